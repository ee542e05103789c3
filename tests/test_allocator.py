"""The CLI keeps freed memory on the heap (glibc), so a training step's multi-MB maps are not faulted in afresh."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Counts glibc's mmapped blocks (mallinfo2().hblks) around one 16 MiB malloc, the size of demo64's largest maps.
PROBE = r"""
import ctypes, sys
sys.path.insert(0, sys.argv[1])
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[2] == "tuned":
    from sneakergan.allocator import keep_freed_memory
    print("applied" if keep_freed_memory() else "skipped")
elif sys.argv[2] == "cli":
    from sneakergan import cli
    sys.argv = ["sneakergan", "presets"]
    try:
        cli.main()
    except SystemExit:
        pass
    print("ran")
before = libc.mallinfo2().hblks
block = libc.malloc(16 << 20)
print("mmapped", libc.mallinfo2().hblks - before)
libc.free(block)
"""


def _probe(mode: str, **env: str) -> list[str]:
    import os

    out = subprocess.run([sys.executable, "-c", PROBE, str(ROOT), mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **env})
    return out.stdout.split()


glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or "glibc" not in " ".join(
    __import__("platform").libc_ver()), reason="glibc malloc only")


@glibc
def test_large_blocks_come_from_the_heap_once_tuned():
    assert _probe("default") == ["mmapped", "1"]  # glibc's default: a fresh mapping per large block
    assert _probe("tuned") == ["applied", "mmapped", "0"]


@glibc
def test_the_system_malloc_can_be_kept():
    assert _probe("tuned", SNEAKERGAN_SYSTEM_MALLOC="1") == ["skipped", "mmapped", "1"]


@glibc
def test_the_cli_tunes_malloc_before_any_command():
    # `sneakergan` (and each torchrun rank, which runs the same entry point) applies it before running a command.
    assert _probe("cli")[-3:] == ["ran", "mmapped", "0"]
