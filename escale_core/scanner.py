"""The round's scan of the local folder: started before the round opens its repository, split
between two processes where it can be, and summed up by a digest.

An idle round is its scan: 100,000 files cost about 0.26 s of Python on one core, and the
comparison with the last round's stat snapshot 0.09 s more (decoding 100,000 entries). So:

* **Split.** On Linux, when the process has a single thread (a command; the daemon watches and
  seldom scans), the first levels of the tree are listed breadth-first until enough folders
  wait; a forked child walks every other one of them while the parent's thread walks the rest.
  The child sends its files back encoded (their paths joined, their numbers in an array), and
  the parent decodes them only if the round needs them. Anything wrong with the child (an
  error, a signal, a short answer) makes the parent walk the child's folders itself.
* **Digest.** :attr:`ScanResult.digest` is a BLAKE2b of every part's paths and numbers, in the
  order walked. Equal digests mean equal scans, so an unchanged folder is recognised without
  decoding anything (:meth:`escale_core.history.LocalState.unchanged`). The order of a folder's
  listing is stable while the folder is unchanged; when it is not, the digests differ and the
  round compares the full scan, as before.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import signal
import sys
import threading
from array import array
from collections.abc import Iterator, Mapping
from itertools import chain
from pathlib import Path
from typing import Optional

from .local import FileStat, Filters, Folder, ScanSink, walk, with_ignore

#: The breadth-first phase stops once this many folders wait to be walked (then split)...
SPLIT_FOLDERS = 16
#: ... or once it found this many files (a flat folder is not worth a second process).
SPLIT_BUDGET = 2_000
#: What a helper sends back: its part encoded (count, paths, numbers, digest), then its
#: temporary files, unnamed names, symlinks and unreadable names.
_Answer = tuple[int, bytes, bytes, bytes, list[str], list[str], list[str], list[str]]
#: A part's digest covers its paths, then its numbers; the format is in the personalisation.
_PERSON = b"escale-scan-1"


def part_digest(found: dict[str, FileStat]) -> Optional[bytes]:
    """The digest of one part of a scan (``None`` when its numbers fit in no 64-bit array: a
    file time before 1970 beside an inode number above 2^63; the round then compares in
    full)."""
    keys, numbers = _encode(found)
    if numbers is None:
        return None
    return _digest_of(len(found), keys, numbers)


def _encode(found: dict[str, FileStat]) -> tuple[bytes, Optional[bytes]]:
    """The paths of ``found`` joined by NUL (which no path holds), and its numbers as 64-bit
    integers after their type code: signed (``q``), else unsigned (``Q``: some network and
    FUSE file systems have inode numbers above 2^63); ``None`` if neither holds them."""
    keys = "\0".join(found).encode("utf-8", "surrogatepass")
    for code in ("q", "Q"):
        try:
            numbers = array(code, chain.from_iterable(found.values())).tobytes()
        except OverflowError:
            continue
        return keys, code.encode() + numbers
    return keys, None


def _digest_of(count: int, keys: bytes, numbers: bytes) -> bytes:
    hasher = hashlib.blake2b(digest_size=32, person=_PERSON)
    hasher.update(count.to_bytes(8, "little"))
    hasher.update(len(keys).to_bytes(8, "little"))
    hasher.update(keys)
    hasher.update(numbers)
    return hasher.digest()


def _decode(count: int, keys: bytes, numbers: bytes) -> dict[str, FileStat]:
    """The part :func:`_encode` encoded."""
    if not count:
        return {}
    values = iter(array(chr(numbers[0]), numbers[1:]))
    new = tuple.__new__
    return {
        path: new(FileStat, triple)
        for path, triple in zip(
            keys.decode("utf-8", "surrogatepass").split("\0"), zip(values, values, values)
        )
    }


class ScanResult(Mapping[str, FileStat]):
    """What a scan found: its files (a mapping of path to stat, decoded on first use), its
    :attr:`digest`, and the names it could not or would not sync."""

    def __init__(self) -> None:
        self._files: dict[str, FileStat] = {}
        self._encoded: list[tuple[int, bytes, bytes]] = []  # parts not decoded yet
        self._digests: list[Optional[bytes]] = []
        #: escale's temporary files and folders (left by a killed run), absolute paths
        self.temp_files: list[str] = []
        #: names that are not valid UTF-8 (never synced)
        self.unnamed: list[str] = []
        #: symlinks the filters accept (never followed nor synced)
        self.symlinks: list[str] = []
        #: what cannot be read (folders with a trailing "/")
        self.unreadable: list[str] = []

    @classmethod
    def of(cls, found: dict[str, FileStat]) -> ScanResult:
        """A result of one part, walked in this process."""
        result = cls()
        result.add(found)
        return result

    @classmethod
    def walked(cls, root: Path, filters: Filters) -> ScanResult:
        """A scan of ``root`` in this process, now (:func:`escale_core.local.scan`)."""
        result, found = cls(), dict[str, FileStat]()
        walk(result.sink(found), filters, [("", str(root))])
        result.add(found)
        return result

    def sink(self, found: dict[str, FileStat]) -> ScanSink:
        """Where a walk puts its files (``found``) and the names of this result's lists."""
        return ScanSink(found, self.temp_files, self.unnamed, self.symlinks, self.unreadable)

    def add(self, found: dict[str, FileStat]) -> None:
        """Add a part walked in this process."""
        self._files.update(found)
        self._digests.append(part_digest(found))

    def add_encoded(self, count: int, keys: bytes, numbers: bytes, digest: bytes) -> None:
        """Add a part walked by another process, as :func:`_encode` encoded it."""
        self._encoded.append((count, keys, numbers))
        self._digests.append(digest)

    @property
    def digest(self) -> Optional[bytes]:
        """The digest of the whole scan: equal digests, equal scans (``None``: unknown)."""
        parts = [d for d in self._digests if d is not None]
        if len(parts) < len(self._digests):
            return None
        return hashlib.blake2b(b"".join(parts), digest_size=32, person=_PERSON).digest()

    @property
    def files(self) -> dict[str, FileStat]:
        """Every file found, by path (the other process's parts decoded now)."""
        while self._encoded:
            self._files.update(_decode(*self._encoded.pop()))
        return self._files

    def __getitem__(self, path: str) -> FileStat:
        return self.files[path]

    def get(self, path: str, default: Optional[FileStat] = None) -> Optional[FileStat]:  # type: ignore[override]
        return self.files.get(path, default)

    def __contains__(self, path: object) -> bool:
        return path in self.files

    def __iter__(self) -> Iterator[str]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)


def can_split() -> bool:
    """Whether a scan may fork a helper: on Linux (elsewhere ``fork`` without ``exec`` is
    unsafe or missing), from a process with a single thread, counted by the kernel (a fork
    copies one thread, and a lock another one holds would stay held in the child; a library
    may start threads that :mod:`threading` does not know)."""
    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


class BackgroundScan:
    """A scan of the local folder running while the round opens its repository (the key
    derivation and the relay's I/O release the GIL), split with a forked child where it
    can be (see the module's text)."""

    def __init__(self, root: Path, filters: Filters, split: Optional[bool] = None) -> None:
        """Start scanning ``root``.

        :param split: fork a helper (default: :func:`can_split`).
        :raises IgnoreFileError: its ``.escaleignore`` cannot be read or is invalid (read
            now, so that the round and its scan apply the same rules: :attr:`filters`).
        :raises LocalFolderError: ``root`` itself cannot be listed.
        """
        self.filters = with_ignore(filters, root)
        self._result = ScanResult()
        self._error: Optional[BaseException] = None
        mine: list[Folder] = [("", str(root))]
        first: dict[str, FileStat] = {}
        helper: Optional[_Helper] = None
        if can_split() if split is None else split:
            try:
                mine = walk(
                    self._result.sink(first), self.filters, mine, SPLIT_FOLDERS, SPLIT_BUDGET
                )
            except BaseException as exc:  # raised by result(), in the round, as a walk's are
                self._error = exc
                mine = []
            if len(mine) > 1:
                helper = _Helper.start(mine[1::2], self.filters)
                if helper is not None:  # else (no process to be had) all are walked here
                    mine = mine[0::2]
        self._thread = threading.Thread(
            target=self._run, args=(first, mine, helper), name="escale-scan", daemon=True
        )
        try:
            self._thread.start()
        except BaseException:
            if helper is not None:
                helper.answer()  # reaped, its pipe closed
            raise

    def _run(
        self, found: dict[str, FileStat], mine: list[Folder], helper: Optional[_Helper]
    ) -> None:
        if self._error is not None:  # the first levels failed: nothing was handed out
            return
        try:
            try:
                walk(self._result.sink(found), self.filters, mine)
                self._result.add(found)
            finally:  # the child is reaped whatever happened here
                answer = helper.answer() if helper is not None else None
            if helper is not None:
                if answer is None:  # the helper failed: walk its folders here
                    theirs: dict[str, FileStat] = {}
                    walk(self._result.sink(theirs), self.filters, list(helper.folders))
                    self._result.add(theirs)
                else:
                    self._take(answer)
        except BaseException as exc:  # re-raised in the round's thread by result()
            self._error = exc

    def _take(self, answer: _Answer) -> None:
        count, keys, numbers, digest, temp_files, unnamed, symlinks, unreadable = answer
        result = self._result
        result.add_encoded(count, keys, numbers, digest)
        result.temp_files += temp_files
        result.unnamed += unnamed
        result.symlinks += symlinks
        result.unreadable += unreadable

    def result(self) -> ScanResult:
        """Wait for the scan and return what it found."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result

    def close(self) -> None:
        """Wait for a scan nobody will take (the round failed before its push): its helper is
        then reaped and the next section's scan runs alone."""
        self._thread.join()


class _Helper:
    """A forked child walking some folders; its answer comes through a pipe."""

    def __init__(self, pid: int, fd: int, folders: list[Folder]) -> None:
        self.pid, self.fd, self.folders = pid, fd, folders

    @classmethod
    def start(cls, folders: list[Folder], filters: Filters) -> Optional[_Helper]:
        """Fork a child that walks ``folders``; ``None`` if no child could be made."""
        try:
            read_end, write_end = os.pipe()
        except OSError:  # out of descriptors: no helper
            return None
        # A signal between the fork and the child's own handlers would run the parent's
        # handler in the child (Ctrl-C reaches the whole process group): block them across it.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            os.close(read_end)
            os.close(write_end)
            return None
        if pid == 0:  # the child: walk, answer, exit without running any of the parent's code
            status = 1
            try:
                for signum in _STOP_SIGNALS:
                    signal.signal(signum, signal.SIG_DFL)  # a stop signal ends it at once
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
                os.close(read_end)
                _answer(write_end, folders, filters)
                status = 0
            finally:
                os._exit(status)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(write_end)
        return cls(pid, read_end, folders)

    def answer(self) -> Optional[_Answer]:
        """The child's answer, once it exited; ``None`` if it failed."""
        chunks = []
        try:
            while True:
                chunk = os.read(self.fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        except OSError:
            chunks = []
        finally:
            os.close(self.fd)
            status = self._reap()
        if status != 0 or not chunks:
            return None
        try:
            answer = marshal.loads(b"".join(chunks))
        except (EOFError, ValueError, TypeError):
            return None
        return answer if isinstance(answer, tuple) and len(answer) == 8 else None

    def _reap(self) -> int:
        """Wait for the child; its wait status (-1 when it cannot be waited for: a parent
        process that ignores SIGCHLD leaves its children to be reaped by the kernel)."""
        try:
            return os.waitpid(self.pid, 0)[1]
        except ChildProcessError:
            return -1


#: The signals that stop escale (their handlers must not run in a helper).
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _answer(fd: int, folders: list[Folder], filters: Filters) -> None:
    """In the child: walk ``folders`` and write the encoded part to ``fd``."""
    found: dict[str, FileStat] = {}
    sink = ScanSink(found, [], [], [], [])
    walk(sink, filters, list(folders))
    keys, numbers = _encode(found)
    if numbers is None:
        raise OverflowError("a file's number does not fit in 64 bits")
    digest = _digest_of(len(found), keys, numbers)
    data = marshal.dumps(
        (len(found), keys, numbers, digest, sink.temp_files, sink.unnamed, sink.symlinks,
         sink.unreadable),
    )  # fmt: skip
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
