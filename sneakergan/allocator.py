"""Keep freed memory in the process instead of handing it back to the kernel after every tensor (glibc only).

Why: glibc's malloc serves large blocks (over 128 KiB at first) with fresh `mmap` pages and returns them with
`munmap` on free, and trims the heap's top whenever more than 128 KiB lie free there. A CPU training step allocates
and frees activation maps of several MB hundreds of times, so each one is faulted in page by page (the kernel
zeroes every 4 KiB page) and then given back. Profiled on demo64 (bf16, batch 16, 2 threads): a 16 MB float32
copy that takes 0.2 ms on warm memory took 15-30 ms inside the step. Keeping freed blocks on the heap (no mmap for blocks up to 32 MiB, no trimming)
made the bf16 demo64 step faster side by side (README, bf16: core 1.2-1.3x, full 1.0-1.1x); what it costs is
that the process keeps its peak heap size until it exits, which a training run, a benchmark or a server reaches
anyway.

This is the in-process form of `MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_` (which must be set before a
process starts): call `keep_freed_memory()` early, before the first large tensors. Set
`SNEAKERGAN_SYSTEM_MALLOC=1` to leave malloc's defaults alone. Elsewhere (macOS, musl, Windows) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from functools import lru_cache

# mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

# glibc caps M_MMAP_THRESHOLD at 32 MiB on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX); bigger blocks still mmap,
# which is fine: they are rare and large enough that the fault cost is small next to the work done on them.
MMAP_THRESHOLD = 32 * 1024 * 1024
TOP_PAD = 64 * 1024 * 1024


@lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Tune glibc malloc to reuse freed memory (module docstring). Returns True when the settings took effect.

    Idempotent; a no-op returning False off glibc or when SNEAKERGAN_SYSTEM_MALLOC=1.
    """
    if os.environ.get("SNEAKERGAN_SYSTEM_MALLOC") == "1" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs without mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # Trim threshold: the largest int, i.e. never trim the heap's top (a value <= 0 would mean "trim always").
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1 and ok
    ok = mallopt(_M_TOP_PAD, TOP_PAD) == 1 and ok
    return ok
