"""`python -m hnanas ...` (also what `torchrun -m hnanas search ...` runs)."""

from hnanas.cli import console_main

if __name__ == "__main__":
    console_main()
