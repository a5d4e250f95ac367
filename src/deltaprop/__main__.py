"""``python -m deltaprop``: the ``deltaprop`` command (see :mod:`deltaprop.cli`)."""

import sys

from .cli import main

sys.exit(main())
