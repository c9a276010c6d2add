"""`python -m hnanas ...` (also what `torchrun -m hnanas search ...` runs)."""

import sys

from hnanas.cli import main

if __name__ == "__main__":
    sys.exit(main())
