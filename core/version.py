"""The package's version, written here only: setup.py reads it, ``streamdiffvsr --version`` prints it."""

__version__ = "0.1.0"
