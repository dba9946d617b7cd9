"""``python -m fewshot.nas ...``: the same as ``fewshot nas ...``."""

import sys

from fewshot.nas.cli import main

sys.exit(main())
