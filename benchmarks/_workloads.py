"""The benchmark workloads and the deterministic source trees they run on.

Every tree is random content from a seeded :class:`random.Random`, so two runs of the
benchmark sync the very same bytes. ``scale`` divides file counts, folder counts and the size
of the single big file (``--quick`` is scale 10).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

MIB = 1 << 20

#: Workload kinds: A → R → B copies, a second sync with nothing changed, and W1 over servers.
TRANSFER, IDLE, NETWORK = "transfer", "idle", "network"


@dataclass(frozen=True)
class Tree:
    """A source tree, generated once per benchmark run and shared by the workloads naming it."""

    name: str
    describe: str
    make: Callable[[Path], None]


@dataclass(frozen=True)
class Target:
    """escale's goal on a workload: ratio to the baseline, and optionally a peak RSS."""

    ratio: float
    rss_mib: Optional[float] = None


@dataclass(frozen=True)
class Workload:
    """One line of the benchmark plan.

    :param key: ``W1`` … ``W6``.
    :param kind: :data:`TRANSFER`, :data:`IDLE` or :data:`NETWORK`.
    :param tree: the source tree A starts from.
    :param target: escale's goal (none for W5).
    :param delete_each_run: free each run's folders right after it (big data, few inodes).
    """

    key: str
    kind: str
    tree: Tree
    target: Optional[Target]
    delete_each_run: bool = False

    @property
    def baseline(self) -> str:
        """The tool whose median is the ratio's denominator."""
        return "find" if self.kind == IDLE else "cp"

    @property
    def label(self) -> str:
        """The workload column of the table."""
        if self.kind == IDLE:
            return f"{self.key}: idle round, {self.tree.describe}"
        if self.kind == NETWORK:
            return f"{self.key}: {self.tree.describe} over WebDAV / SFTP"
        return f"{self.key}: {self.tree.describe}"


def _folder(root: Path, index: int, folders: int) -> Path:
    folder = root / f"d{index % folders:04d}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def make_files(root: Path, count: int, size: int, folders: int, seed: int) -> None:
    """``count`` random files of ``size`` bytes spread over ``folders`` folders."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (_folder(root, i, folders) / f"f{i:06d}").write_bytes(rng.randbytes(size))


def make_tiny(root: Path, count: int, folders: int, seed: int) -> None:
    """``count`` random files of 1–100 bytes spread over ``folders`` folders."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (_folder(root, i, folders) / f"f{i:06d}").write_bytes(rng.randbytes(rng.randint(1, 100)))


def make_big(root: Path, mib: int, seed: int) -> None:
    """One random file of ``mib`` MiB, written 1 MiB at a time (never all in memory)."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "big.bin", "wb") as out:
        for _ in range(mib):
            out.write(rng.randbytes(MIB))


def _folders(n: int) -> str:
    return f"{n:,} folder" if n == 1 else f"{n:,} folders"


def _count(n: int, scale: int) -> int:
    return max(1, n // scale)


def trees(scale: int) -> dict[str, Tree]:
    """The source trees at this scale, by name."""
    small, small_dirs = _count(10_000, scale), _count(100, scale)
    medium, medium_dirs = _count(1_000, scale), _count(10, scale)
    tiny, tiny_dirs = _count(100_000, scale), _count(1_000, scale)
    mib = _count(1024, scale)
    return {
        "small": Tree(
            "small",
            f"{small:,} files × 4 KiB in {_folders(small_dirs)}",
            lambda root: make_files(root, small, 4096, small_dirs, seed=1),
        ),
        "medium": Tree(
            "medium",
            f"{medium:,} files × 64 KiB in {_folders(medium_dirs)}",
            lambda root: make_files(root, medium, 65536, medium_dirs, seed=2),
        ),
        "big": Tree("big", f"one {mib:,} MiB file", lambda root: make_big(root, mib, seed=3)),
        "tiny": Tree(
            "tiny",
            f"{tiny:,} files of 1–100 B in {_folders(tiny_dirs)}",
            lambda root: make_tiny(root, tiny, tiny_dirs, seed=4),
        ),
    }


def workloads(scale: int) -> list[Workload]:
    """W1 … W6 at this scale."""
    tree = trees(scale)
    return [
        Workload("W1", TRANSFER, tree["small"], Target(1.0)),
        Workload("W2", TRANSFER, tree["medium"], Target(1.0)),
        Workload("W3", TRANSFER, tree["big"], Target(1.2, rss_mib=64.0), delete_each_run=True),
        Workload("W4", IDLE, tree["tiny"], Target(2.0)),
        Workload("W5", NETWORK, tree["small"], None),
        Workload("W6", TRANSFER, tree["tiny"], Target(1.0)),
    ]
