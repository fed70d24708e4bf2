"""Generated histories of paths that change type: files and folders under one name, made,
replaced and removed by 2 or 3 clients in any order (hypothesis).

The main model (``test_sync_model.py``) never makes a file and a folder under one name; here
every operation does. The users write ``p`` (a file), ``p/q`` or ``p/r.txt`` (files in a folder
``p``), or ``s``; writing one kind where the other stands first removes it, as a user would.
Invariants:

1. every round completes without an error and leaves no temporary file;
2. a round never destroys a content: it stays in the folder or in ``.escale/versions``;
3. after quiet rounds of every client, all folders are the same.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from escale_core.engine import Engine, SyncOptions
from escale_core.history import LocalState
from escale_core.local import Filters
from escale_core.versions import VersionPolicy

from .test_sync_model import (  # noqa: F401 - shared_relay is a fixture
    IN_CI,
    SharedRelay,
    kept_versions,
    lost_by_round,
    read_tree,
    scratch_folder,
    shared_relay,
    temp_leftovers,
)

EXAMPLES = int(os.environ.get("ESCALE_TYPE_EXAMPLES", "500"))
PATHS = ("p", "p/q", "p/r.txt", "s")
NAMES = ("alice", "bob", "carol")
SETTLE_PASSES = 16  # pullers below the other clients: full updates take passes


@dataclass(frozen=True)
class Write:
    """``client`` writes a new content at ``path``, removing what stands in its way."""

    client: str
    path: str


@dataclass(frozen=True)
class Remove:
    """``client`` removes ``path``: a file, or a folder with what it holds."""

    client: str
    path: str


@dataclass(frozen=True)
class Round:
    """One shared round of ``client``."""

    client: str


Op = Union[Write, Remove, Round]


@st.composite
def histories(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[Op, ...]]:
    """(pullers of each client, operations)."""
    count = draw(st.integers(2, 3))
    clients = NAMES[:count]
    pullers = tuple(draw(st.integers(1, count - 1)) for _ in clients)
    client = st.sampled_from(clients)
    path = st.sampled_from(PATHS)
    op = st.one_of(
        st.builds(Write, client, path),
        st.builds(Remove, client, st.sampled_from(("p", "p/q", "s"))),
        st.builds(Round, client),
    )
    return pullers, tuple(draw(st.lists(op, min_size=1, max_size=16)))


@dataclass
class Side:
    name: str
    root: Path
    engine_args: tuple[object, ...]


def _user_write(root: Path, path: str, content: bytes) -> None:
    target = root / path
    for parent in reversed(target.relative_to(root).parents[:-1]):
        folder = root / parent
        if folder.is_file():
            folder.unlink()  # a file where the user wants a folder
    if target.is_dir():
        shutil.rmtree(target)  # a folder where the user wants a file
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)


def _user_remove(root: Path, path: str) -> None:
    target = root / path
    if target.is_dir():
        shutil.rmtree(target)
    elif target.is_file():
        target.unlink()


def run_history(shared: SharedRelay, pullers: tuple[int, ...], ops: tuple[Op, ...]) -> None:
    shared.wipe()
    trace: list[str] = []
    with tempfile.TemporaryDirectory(prefix="escale-types-", dir=scratch_folder()) as work:
        states: dict[str, LocalState] = {}
        roots: dict[str, Path] = {}
        for name in NAMES[: len(pullers)]:
            roots[name] = Path(work) / name / "folder"
            roots[name].mkdir(parents=True)
            states[name] = LocalState("types", Path(work) / name / "state")
        try:

            def round_of(name: str, step: str) -> bool:
                root = roots[name]
                before = read_tree(root)
                cid = shared.repo.client_id(name)
                options = SyncOptions(
                    root=root,
                    client=name,
                    mode="shared",
                    filters=Filters([], [], [], [], []),
                    pullers=pullers[list(roots).index(name)],
                    versions=VersionPolicy(kind="simple", keep=10**6),  # all, for invariant 2
                )
                report = Engine(
                    dataclasses.replace(shared.repo), states[name], options,
                    shared.plugins.checksums,
                ).run_round()  # fmt: skip
                after = read_tree(root)
                moved = {
                    k: v
                    for k, v in report.as_dict().items()
                    if isinstance(v, list) and v and k != "notices"
                }
                trace.append(f"{step} {name} ({cid[:6]}): {sorted(after)} {moved}")
                assert not report.errors, "\n".join(trace)
                assert not temp_leftovers(root), "\n".join(trace)
                lost = lost_by_round(before, after, kept_versions(root))
                assert not lost, f"lost {lost}\n" + "\n".join(trace)
                return after != before or not report.in_sync or report.transferred

            for index, op in enumerate(ops):
                if isinstance(op, Write):
                    content = f"#{index} by {op.client} at {op.path}".encode()
                    _user_write(roots[op.client], op.path, content)
                    trace.append(f"#{index} {op}")
                elif isinstance(op, Remove):
                    _user_remove(roots[op.client], op.path)
                    trace.append(f"#{index} {op}")
                else:
                    round_of(op.client, f"#{index}")
            for attempt in range(SETTLE_PASSES):
                busy = [round_of(name, f"settle {attempt}") for name in roots]
                if not any(busy):
                    break
            else:
                raise AssertionError("no quiescence\n" + "\n".join(trace))
            trees = {name: read_tree(root) for name, root in roots.items()}
            first = next(iter(trees.values()))
            assert all(tree == first for tree in trees.values()), f"{trees}\n" + "\n".join(trace)
        finally:
            for state in states.values():
                state.close()


A, B, C = NAMES
#: Histories hypothesis found, kept as regression examples (run before any random one). The
#: first two need two versions of ``p`` by alice within one second (writes take the clock's
#: time and the rounds take milliseconds): their conflict copies get one name.
REGRESSIONS = (
    # alice's update wrote the copy's name twice (the copy entry, and the copy of the incoming
    # ``p`` her new folder evicts): her index recorded one version over the other's bytes
    (
        (1, 1),
        (
            Write(A, "p"),
            Round(A),
            Write(A, "p"),
            Round(A),
            Write(A, "p/q"),
            Write(B, "p"),
            Round(B),
        ),
    ),
    # the eviction's hard link to the copy's name, taken by the earlier version, failed: alice
    # deferred ``p`` for ever
    ((1, 1), (Write(A, "p"), Round(A), Write(A, "p"), Write(B, "p"), Round(B), Write(B, "p/q"))),
)


def with_regressions(test: Any) -> Any:
    """``test`` with every history of :data:`REGRESSIONS` as an explicit example."""
    for history in reversed(REGRESSIONS):
        test = example(history=history)(test)
    return test


@with_regressions
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=IN_CI,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(history=histories())
def test_files_and_folders_under_one_name_converge_and_nothing_is_lost(
    shared_relay: SharedRelay,  # noqa: F811 - the fixture imported above
    history: tuple[tuple[int, ...], tuple[Op, ...]],
) -> None:
    pullers, ops = history
    run_history(shared_relay, pullers, ops)


@pytest.mark.xfail(
    strict=True,
    reason=(
        "not fixed: bob's file p reaches alice while carol's folder p stands there (p/q, which "
        "carol then removed): alice keeps it as its conflict copy only, bob and carol at p, for "
        "good. Recording the file as deleted where the folder wins (commit ccd19d9) fixed this "
        "history but broke test_a_file_and_a_folder_made_under_one_name_on_two_clients_"
        "converge_keeping_both (the deletion then meets the folder on a third client), so it "
        "was reverted"
    ),
)
def test_a_file_kept_only_as_a_copy_where_a_removed_folder_stood_converges(
    shared_relay: SharedRelay,  # noqa: F811 - the fixture imported above
) -> None:
    """Found by the type model at 10,000 examples (on main before this session too)."""
    run_history(shared_relay, (1, 2, 1), (Write(B, "p"), Write(C, "p/q"), Round(C), Remove(C, "p")))
