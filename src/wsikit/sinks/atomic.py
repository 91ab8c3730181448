"""Write-then-rename: a result file is either whole or absent, even after ``kill -9``.

Every file of a result folder is first written under a temporary name starting with
:data:`TMP_PREFIX` in the same folder, then renamed into place (a rename within one file
system is atomic). What a killed run leaves behind is therefore only temporaries, which
:func:`remove_temporaries` deletes before a rerun writes anything.
"""
from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable

#: the start of the names of files and folders not yet renamed into place
TMP_PREFIX = ".wsikit-tmp-"


def temporary_path(folder: str) -> str:
    """A fresh temporary name in ``folder`` (same file system, so renaming it is atomic)."""
    return os.path.join(folder, f"{TMP_PREFIX}{uuid.uuid4().hex}")


def write_atomic(path: str, data: bytes | Iterable[bytes], sync: bool = False) -> None:
    """Write ``data`` (bytes, or pieces written one after the other) to ``path`` through a
    temporary file; with ``sync`` the bytes reach the disk before the rename (used for the
    file whose presence marks a complete slide)."""
    tmp = temporary_path(os.path.dirname(path))
    pieces = (data,) if isinstance(data, (bytes, bytearray, memoryview)) else data
    try:
        with open(tmp, "wb") as f:
            for piece in pieces:
                f.write(piece)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def remove_temporaries(folder: str) -> None:
    """Remove what a killed run left half-written under ``folder``: our temporary files and
    folders, and Zarr's ``*.partial`` chunk files."""
    for root, dirs, files in os.walk(folder):
        for name in dirs[:]:
            if name.startswith(TMP_PREFIX):
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)
                dirs.remove(name)
        for name in files:
            if name.startswith(TMP_PREFIX) or name.endswith(".partial"):
                os.unlink(os.path.join(root, name))
