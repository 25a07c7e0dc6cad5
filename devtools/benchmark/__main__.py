"""Entry point of ``python -m devtools.benchmark``."""

import sys

from devtools.benchmark.run import main

sys.exit(main())
