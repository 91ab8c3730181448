"""Write-then-rename: a result file is either whole or absent, even after ``kill -9``.

Every file of a result folder is first written under a temporary name starting with
:data:`TMP_PREFIX` in the same folder, then renamed into place (a rename within one file
system is atomic). What a killed run leaves behind is therefore only temporaries, which
:func:`remove_temporaries` deletes before a rerun writes anything.
"""
from __future__ import annotations

import itertools
import os
import shutil
import uuid
from collections.abc import Iterable

#: the start of the names of files and folders not yet renamed into place
TMP_PREFIX = ".wsikit-tmp-"
# Temporary names: a random token per process (and its id, renewed after a fork) and a
# counter, unique across processes and machines sharing a folder, without the cost of a
# fresh UUID per tile file.
_token = (os.getpid(), uuid.uuid4().hex[:16])
_counter = itertools.count()
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def temporary_path(folder: str) -> str:
    """A fresh temporary name in ``folder`` (same file system, so renaming it is atomic)."""
    global _token
    pid = os.getpid()
    if _token[0] != pid:
        _token = (pid, uuid.uuid4().hex[:16])
    return os.path.join(folder, f"{TMP_PREFIX}{_token[1]}-{pid}-{next(_counter)}")


def write_atomic(path: str, data: bytes | Iterable[bytes], sync: bool = False) -> None:
    """Write ``data`` (bytes, or pieces written one after the other) to ``path`` through a
    temporary file; with ``sync`` the bytes reach the disk before the rename (used for the
    file whose presence marks a complete slide)."""
    tmp = temporary_path(os.path.dirname(path))
    pieces = (data,) if isinstance(data, (bytes, bytearray, memoryview)) else data
    try:
        # Plain descriptors: a tile file is one write, and this runs once per tile.
        fd = os.open(tmp, _CREATE, 0o666)
        try:
            for piece in pieces:
                view = memoryview(piece)
                while view:
                    view = view[os.write(fd, view):]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
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
