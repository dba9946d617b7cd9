"""``python -m fewshot.metaopt ...``: the same as ``fewshot metaopt ...``."""

from fewshot.metaopt.cli import main

raise SystemExit(main())
