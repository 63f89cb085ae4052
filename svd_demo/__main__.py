"""`python -m svd_demo ...`: see `svd_demo.cli.commands`."""

import sys

from svd_demo.cli.commands import main

sys.exit(main())
