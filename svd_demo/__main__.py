"""`python -m svd_demo ...`: see `svd_demo.cli`."""

import sys

from svd_demo.cli import main

sys.exit(main())
