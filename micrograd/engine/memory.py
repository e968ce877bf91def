"""Keep freed array memory in the process between training steps (glibc only).

glibc's malloc hands a freed block above ``M_MMAP_THRESHOLD`` (128 KiB at
first, adapting up to 32 MiB) straight back to the kernel, and trims the top of
its heap whenever more than ``M_TRIM_THRESHOLD`` lies free there. A training
step allocates and frees tens of MiB of activations, im2col matrices and
gradients; handed back, the next step gets them again as fresh pages that the
kernel faults in and zeroes, a large share of a CNN step (bench/README.md has
the figures). Raising both thresholds once lets the heap keep those blocks for the
next step. The peak resident memory is the same (it is the high-water mark
either way); the process only stops shrinking between steps.

Set ``MICROGRAD_MALLOPT=0`` in the environment to leave malloc alone.
"""
from __future__ import annotations

import ctypes
import os
import platform

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: Blocks below this come from the heap (larger ones, such as a whole dataset,
#: still get their own mapping, returned on free).
MMAP_THRESHOLD = 64 << 20
#: Free memory at the top of the heap that is kept rather than returned.
TRIM_THRESHOLD = 512 << 20


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds; False where that is not possible or
    ``MICROGRAD_MALLOPT=0``."""
    if os.environ.get("MICROGRAD_MALLOPT", "1") == "0":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
