"""write_atomic: pieces land whole and in order, through writev batches and short writes."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from wsikit.sinks import atomic
from wsikit.sinks.atomic import TMP_PREFIX, write_atomic


def _pieces(count: int) -> list[bytes]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, int(n), dtype=np.uint8).tobytes() for n in rng.integers(0, 3000, count)]


def test_many_pieces_written_in_order(tmp_path: Path) -> None:
    pieces = _pieces(2500)  # more than one writev batch (IOV_MAX is 1024 on Linux), empty pieces too
    target = tmp_path / "shard"
    write_atomic(str(target), pieces)
    assert target.read_bytes() == b"".join(pieces)
    assert not [name for name in os.listdir(tmp_path) if name.startswith(TMP_PREFIX)]


def test_short_writes_are_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writev or write that stores only part of what it was given (a signal) is continued."""
    real_write, real_writev = os.write, os.writev

    def short_writev(fd: int, buffers: list[memoryview]) -> int:
        first = bytes(buffers[0])
        return real_write(fd, first[: max(1, len(first) // 3)] if len(first) > 1 else first)

    def short_write(fd: int, data: memoryview) -> int:
        return real_write(fd, bytes(data)[: max(1, len(data) // 2)])

    monkeypatch.setattr(atomic.os, "writev", short_writev)
    monkeypatch.setattr(atomic.os, "write", short_write)
    pieces = _pieces(50)
    target = tmp_path / "file"
    write_atomic(str(target), pieces)
    monkeypatch.setattr(atomic.os, "writev", real_writev)
    assert target.read_bytes() == b"".join(pieces)


def test_numpy_pieces_are_written_as_bytes(tmp_path: Path) -> None:
    image = np.arange(2 * 3 * 4, dtype="<u2").reshape(2, 3, 4)
    target = tmp_path / "raw"
    write_atomic(str(target), [image, b"end"])
    assert target.read_bytes() == image.tobytes() + b"end"
