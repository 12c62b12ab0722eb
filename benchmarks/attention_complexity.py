"""Parameters and multiply-adds of ResNet-50 / -101 with SE, ECA and CBAM, beside the papers' numbers.

Usage: ``python benchmarks/attention_complexity.py [--depths 50 101] [--input-size 224]``

Counts run on the ``meta`` device (no memory, a few seconds on a CPU). GMACs are
``torch.utils.flop_counter.FlopCounterMode`` FLOPs / 2; "v1.5" is the network the experiments train
(stride in the 3×3 convolution), "v1" the same weights with the stride in the first 1×1 convolution,
the layout the SE and CBAM papers count. See ``experiments/attention_blocks.py`` for the conventions.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as `python benchmarks/attention_complexity.py`: make the packages importable
    sys.path.insert(0, str(REPO_ROOT))

from experiments.attention_blocks import complexity_table  # noqa: E402


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depths", type=int, nargs="+", default=[50, 101], choices=[18, 34, 50, 101])
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--num-classes", type=int, default=1000)
    args = parser.parse_args(argv)
    print(complexity_table(args.depths, args.input_size, args.num_classes))


if __name__ == "__main__":
    main()
