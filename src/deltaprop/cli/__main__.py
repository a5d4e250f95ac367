"""``python -m deltaprop.cli``: the ``deltaprop`` command, as ``python -m deltaprop``."""

import sys

from . import main

sys.exit(main())
