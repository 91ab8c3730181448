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


def _iov_max() -> int:
    """Pieces one ``os.writev`` call may take (1 where there is no writev: one write each)."""
    if not hasattr(os, "writev"):
        return 1
    try:
        limit = int(os.sysconf("SC_IOV_MAX"))
    except (AttributeError, ValueError, OSError):
        limit = -1
    return min(1024, limit) if limit > 0 else 16


#: bytes per writev call at most (unless one piece is larger)
WRITE_CALL_BYTES = 1024**2
#: pieces per writev call at most (the system's limit, 1024 on Linux)
_IOV_MAX = _iov_max()
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
            _write_all(fd, [memoryview(piece).cast("B") for piece in pieces])
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


def _write_all(fd: int, views: list[memoryview]) -> None:
    """Write ``views`` one after the other to ``fd``: ``os.writev`` of pieces adding up to
    about :data:`WRITE_CALL_BYTES` per call (at most :data:`_IOV_MAX` pieces). A shard is
    hundreds of pieces; one ``os.write`` each costs a system call and a GIL hand-off per
    tile, while one writev of a whole 20 MB shard measured worse still on this 2-core VM
    (kernel time up 2x, with spikes: page-cache allocation for one huge call); calls of
    about 1 MiB measured lowest (0.13 s of kernel time per 500 MB vs 0.20 for per-piece
    writes)."""
    views = [view for view in views if view.nbytes]
    while views:
        count, size = 0, 0
        while count < min(len(views), _IOV_MAX) and (count == 0 or size + views[count].nbytes <= WRITE_CALL_BYTES):
            size += views[count].nbytes
            count += 1
        batch = views[:count]
        written = os.writev(fd, batch) if len(batch) > 1 else os.write(fd, batch[0])
        # A short write (a signal, a full disk that frees up) leaves the rest to write next.
        done = 0
        while done < len(views) and written >= views[done].nbytes:
            written -= views[done].nbytes
            done += 1
        views = views[done:]
        if written:
            views[0] = views[0][written:]


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
