"""``python -m tunelab.report <sweep_dir> ...``: see ``tunelab.report.cli``."""

import sys

from tunelab.report.cli import main

sys.exit(main())
