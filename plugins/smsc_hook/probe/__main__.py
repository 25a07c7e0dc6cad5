"""``python -m smsc_hook.probe``."""

import sys

from smsc_hook.probe.run import main

sys.exit(main())
