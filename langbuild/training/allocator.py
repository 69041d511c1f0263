"""Give freed tensor memory back to the operating system when training on the CPU.

glibc's malloc serves requests above a threshold with their own memory mappings, returned to the
system on free, and everything smaller from heaps that keep freed memory. The threshold moves up to
32 MiB by itself whenever a mapped block is freed, so after the first training step the activations
(a few MiB each) all come from the heaps, whose freed holes the next pass does not always reuse: on
Gemma-3-270M, 1,024 tokens per pass, the resident peak grew by 1 GB (15 %) over the memory torch
actually held (benchmarks/logits_memory.py). Fixing the threshold at 1 MiB stops the drift; the
price is a page fault per 4 KiB of each new large tensor, small next to a training step's arithmetic.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # mallopt parameter numbers from glibc's malloc.h
MMAP_THRESHOLD_BYTES = 1 << 20


def return_freed_memory() -> bool:
    """Fix glibc's mmap threshold for this process (see the module doc); False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # musl and others have no mallopt
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
