"""Replaced by gpu_check.py, whose "train bf16" check reports tokens/s and MFU (and which checks much
more); kept so that ``python benchmarks/gpu_train.py`` still works.

    python benchmarks/gpu_train.py [gpu_check.py's options]
"""

from __future__ import annotations

import sys

from gpu_check import main

if __name__ == "__main__":
    sys.exit(main())
