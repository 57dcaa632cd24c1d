"""rnnkit against PyTorch's CPU RNNs, side by side in the same run: ``rnnkit bench`` by another
name (the code is in ``rnnkit/bench/``).

    python benchmarks/speed.py [--quick] [--repeats 7] [--json out.json]
"""

import sys

from rnnkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
