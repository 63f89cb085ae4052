"""`python -m benchmarks.gpu`: see cli.py."""

import sys

from benchmarks.gpu.cli import main

if __name__ == "__main__":
    sys.exit(main())
