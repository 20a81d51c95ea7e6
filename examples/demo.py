"""The demo (``make demo``): a small pruning sweep on the movie-review task with all-MiniLM-L6-v2.

Runs dense, SEVEN_dyn, PLATON and magnitude at sparsities 0.5 and 0.8 (one seed), prints the
methods x sparsities table and where the plots are. About 15 minutes on a 2-core CPU; ``--quick`` for
a first look (about 5 minutes). Interrupt it at any time: the same command resumes, skipping the
runs that finished.

    python examples/demo.py [--quick] [--out DIR] [--no-progress]

The same sweep as a file: ``sevenprune sweep --config experiments/demo.json``.
"""

import sys

from sevenprune.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
