"""Parameters of SANet-ResNet-50 / -101 by part, beside the paper's 55.5 M (SANet Table 6, ResNet-101).

Usage: ``python benchmarks/sanet_complexity.py [--num-classes 59] [--num-convs 2 1]``

Counts run on the ``meta`` device (no memory, seconds on a CPU). ``--num-convs`` is the number of
convolutions per SA path, which the paper does not state (2 is the default of ``SqueezeAttention``).
See ``experiments/sanet.py`` for the conventions.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as `python benchmarks/sanet_complexity.py`: make the packages importable
    sys.path.insert(0, str(REPO_ROOT))

from experiments.sanet import complexity_table  # noqa: E402


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-classes", type=int, default=59)
    parser.add_argument("--num-convs", type=int, nargs="+", default=[2, 1])
    args = parser.parse_args(argv)
    print(complexity_table(args.num_classes, args.num_convs))


if __name__ == "__main__":
    main()
