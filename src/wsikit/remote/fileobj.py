"""A read-only, seekable file object over a byte source, for parsers that want a file
(tifffile, pydicom). Reads go through the source's metadata path (:meth:`read_at`): for a
remote file, a block cache, so the many small reads of a header cost few requests."""
from __future__ import annotations

import io
import os
from typing import Any

from .source import ByteSource


class SourceFile(io.RawIOBase):
    """``open(path, "rb")`` of a :class:`~.source.ByteSource`; each instance has its own position."""

    def __init__(self, source: ByteSource, name: str | None = None) -> None:
        super().__init__()
        self.source = source
        self.name = name or source.name
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            position = offset
        elif whence == os.SEEK_CUR:
            position = self._position + offset
        elif whence == os.SEEK_END:
            position = self.source.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise OSError(22, "Invalid argument: negative seek position")
        self._position = position
        return position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = max(0, self.source.size - self._position)
        data = self.source.read_at(self._position, size)
        self._position += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def __repr__(self) -> str:
        return f"SourceFile({self.name!r})"
