"""Reading an update's data: files are cut out of verified packs and chunks.

Data objects are read only through their manifest, each wholly verified (every AEAD segment)
and decompressed before its bytes are used; one pack is held in memory at a time, and an
uncompressed chunk is streamed one verified segment at a time (a big file never holds a whole
chunk in memory).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Callable, Optional, Union

import zstandard

from .crypto import KIND_CHUNK, KIND_PACK
from .errors import IntegrityError
from .manifest import FileEntry, Manifest, ObjectRef
from .repository import Repository, bounded, data_name

MAX_OBJECT = 256 << 20  # larger declared objects are refused (decompression bombs)


class UpdateData:
    """The data of one update, read file by file in the order of the data objects.

    :param progress: called with a number of bytes as data is read.
    """

    def __init__(
        self,
        repo: Repository,
        manifest: Manifest,
        progress: Optional[Callable[[int], None]] = None,
    ) -> None:
        self.repo, self.manifest, self.progress = repo, manifest, progress
        self._cache: dict[int, bytes] = {}  # the current pack

    def close(self) -> None:
        """Drop the pack held in memory."""
        self._cache.clear()

    def content(self, entry: FileEntry) -> Iterator[Union[bytes, memoryview]]:
        """The bytes of ``entry``, verified object by object (its checksum is checked by
        the writer).

        :raises IntegrityError: an object is tampered, truncated or of the wrong size.
        """
        manifest, cache = self.manifest, self._cache
        for index, offset, length in entry.pieces:
            ref = manifest.objects[index]
            if ref.kind == "pack":
                if index not in cache:
                    cache.clear()  # one pack in memory at a time
                    cache[index] = self._load(index, ref, KIND_PACK)
                yield cache[index][offset : offset + length]
                self._progress(length)
            elif ref.compressed:
                # a view, not a copy: a chunk is as big as max_page_size
                yield memoryview(self._load(index, ref, KIND_CHUNK))[offset : offset + length]
                self._progress(length)
            else:
                yield from self._stream_chunk(index, ref, offset, length)

    def _progress(self, count: int) -> None:
        if self.progress is not None:
            self.progress(count)

    def _stream_chunk(
        self, index: int, ref: ObjectRef, offset: int, length: int
    ) -> Iterator[bytes]:
        """Bytes ``offset`` to ``offset + length`` of an uncompressed chunk, one verified
        segment at a time. The chunk is read to its end, so truncation and a wrong size are
        caught before the file is kept."""
        manifest = self.manifest
        name = data_name(manifest.client, manifest.seq, index)
        end, position = offset + length, 0
        try:
            for segment in self.repo.open_data(KIND_CHUNK, manifest.client, manifest.seq, index):
                start, stop = position, position + len(segment)
                position = stop
                if stop <= offset or start >= end:
                    continue
                if start >= offset and stop <= end:
                    yield segment
                else:
                    yield segment[max(offset - start, 0) : min(end, stop) - start]
                self._progress(len(segment))
                if position > ref.size:
                    break
        except IntegrityError as exc:  # name the object that failed, not only its update
            raise type(exc)(f"{name}: {exc}") from None
        if position != ref.size:
            raise IntegrityError(f"{name} has the wrong size")

    def _load(self, index: int, ref: ObjectRef, kind: int) -> bytes:
        manifest = self.manifest
        if ref.size > MAX_OBJECT:
            raise IntegrityError(f"update {manifest.seq}: object {index} declares {ref.size} bytes")
        name = data_name(manifest.client, manifest.seq, index)
        try:
            # a writer compresses only what shrinks: no stored body exceeds the declared size,
            # so reading stops there
            data = self.repo.open_data(kind, manifest.client, manifest.seq, index)
            body = b"".join(bounded(data, ref.size, "data object"))
        except IntegrityError as exc:  # name the object that failed, not only its update
            raise type(exc)(f"{name}: {exc}") from None
        if ref.compressed:
            try:
                body = zstandard.ZstdDecompressor().decompress(body, max_output_size=ref.size)
            except zstandard.ZstdError as exc:
                raise IntegrityError(f"{name}: {exc}") from None
        if len(body) != ref.size:
            raise IntegrityError(f"{name} has the wrong size")
        return body
