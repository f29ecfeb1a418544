"""``python -m streamdiffvsr.cli ...`` runs the ``streamdiffvsr`` command."""

import sys

from streamdiffvsr.cli.main import main

sys.exit(main())
