"""Reading untrusted zip archives (datasets) with bounded memory and one clear error per problem.

`zipfile` raises many types for a bad archive (BadZipFile for a CRC mismatch, NotImplementedError for an unknown
compression method, RuntimeError for an encrypted member, zlib/lzma errors, EOFError for a truncated one) and
reads whatever size a member declares. These helpers check members up front from the central directory (method,
encryption, declared size) and read a member only up to a limit, turning every failure into the caller's error
type with the archive and member named.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Callable

SUPPORTED_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
                     zipfile.ZIP_LZMA: "lzma"}
READ_ERRORS: tuple[type[BaseException], ...] = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError,
                                                RuntimeError, EOFError, OSError, zlib.error, ValueError)
try:  # lzma errors are their own type when the module exists
    import lzma

    READ_ERRORS += (lzma.LZMAError,)
except ImportError:  # pragma: no cover - Python built without lzma
    pass

ErrorFactory = Callable[[str], Exception]


def open_zip(path: str | Path, error: ErrorFactory) -> zipfile.ZipFile:
    """Open an archive; a corrupt central directory is `error(message)`."""
    try:
        return zipfile.ZipFile(path)
    except READ_ERRORS as e:
        raise error(f"{path}: not a readable zip archive ({_reason(e)})") from None


def check_member(path: str | Path, info: zipfile.ZipInfo, max_bytes: int, error: ErrorFactory) -> None:
    """Refuse, from the central directory alone, a member that could not or should not be read."""
    if info.flag_bits & 0x1:
        raise error(f"{path}: {info.filename} is encrypted (datasets must be unencrypted zips)")
    if info.compress_type not in SUPPORTED_METHODS:
        raise error(f"{path}: {info.filename} uses compression method {info.compress_type}, which cannot be read "
                    f"(use {', '.join(SUPPORTED_METHODS.values())})")
    if info.file_size > max_bytes:
        raise error(f"{path}: {info.filename} declares {info.file_size:,} bytes, more than the {max_bytes:,} an "
                    "image of this dataset can need (padded or not an image)")


def read_member(zf: zipfile.ZipFile, path: str | Path, name: str, max_bytes: int, error: ErrorFactory) -> bytes:
    """The bytes of member `name`, at most `max_bytes` (zipfile stops at the declared size and checks the CRC)."""
    try:
        info = zf.getinfo(name)
        check_member(path, info, max_bytes, error)
        with zf.open(info) as f:
            data = f.read(max_bytes + 1)
    except KeyError:
        raise error(f"{path}: has no member {name}") from None
    except READ_ERRORS as e:
        if isinstance(e, error_type(error)):
            raise
        raise error(f"{path}: cannot read {name} ({_reason(e)})") from None
    if len(data) > max_bytes:
        raise error(f"{path}: {name} holds more than {max_bytes:,} bytes")
    return data


def error_type(error: ErrorFactory) -> type:
    """The exception class behind a factory (a class is its own factory)."""
    return error if isinstance(error, type) else Exception


def _reason(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."
