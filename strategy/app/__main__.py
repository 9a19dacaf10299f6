"""``python -m factorcast.strategy.app``: the ``factorcast`` command."""

import sys

from factorcast.strategy.app.cli import main

sys.exit(main())
