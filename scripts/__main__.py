"""``python -m streamdiffvsr.cli ...`` runs the ``streamdiffvsr`` command."""

import sys

from .main import main

sys.exit(main())
