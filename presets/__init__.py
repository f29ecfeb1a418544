"""Bundled presets (package data: *.toml), read by streamdiffvsr.cli.presets and validated by its schema."""
