"""Causality end to end: real ``escale sync`` processes on real folders sharing a ``file://``
relay, in the situations where a sync engine that compares checksums and mtimes (instead of
knowing which version descends from which) loses data: a deletion that a client missed, a
relay that withholds or replays objects, an edit that carries an older mtime, conflicts seen
through other clients, a user writing while a pull runs, and a client that lost its state.

Every test states the correct outcome. The trees compared leave out the hidden ``.escale``
folder (local previous versions, never synced) but keep ``.escale-tmp-*`` leftovers.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from .clients import Client, Cluster

SEC = 1_000_000_000
T0 = 1_600_000_000 * SEC  # 2020-09-13 12:26:40 UTC, in nanoseconds
KIB = 1 << 10
VERSIONS = ".escale/versions"
CONFLICT = ".sync-conflict-"

Tree = dict[str, tuple[bytes, int]]


# -- helpers -----------------------------------------------------------------------------


def put(client: Client, rel: str, data: bytes | str, mtime_ns: int) -> None:
    """Write a file with an exact nanosecond mtime."""
    path = client.write(rel, data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def visible_tree(root: Path) -> Tree:
    """Relative path → (content, mtime_ns) of every file under ``root``, except those whose
    first path component is hidden (``.escale``: local previous versions, never synced).
    ``.escale-tmp-*`` leftovers are kept, so that they show up as a difference."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        first = rel.parts[0]
        if first.startswith(".") and not first.startswith(".escale-tmp-"):
            continue
        if path.is_file() and not path.is_symlink():
            out[rel.as_posix()] = (path.read_bytes(), path.stat().st_mtime_ns)
    return out


def kept_versions(client: Client) -> dict[str, bytes]:
    """Path under ``.escale/versions`` → content, of every previous version ``client`` kept."""
    folder = client.root / VERSIONS
    if not folder.is_dir():
        return {}
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def run_sync(client: Client) -> subprocess.CompletedProcess[str]:
    """One ``escale sync`` round; exit 1 (not in sync yet, e.g. waiting for a full re-send) is
    allowed, a crash or a usage error is not."""
    run = client.sync(check=False)
    if run.returncode not in (0, 1) or "Traceback" in run.stderr:
        raise AssertionError(f"{client.name}: exit {run.returncode}\n{run.stdout}\n{run.stderr}")
    return run


@dataclass
class Settled:
    """The outcome of :func:`settle`."""

    trees: dict[str, Tree]
    quiet: bool
    log: list[str]

    def assert_converged(self) -> Tree:
        """Every folder is equal (names, contents, mtimes) and the last passes were quiet;
        return the common tree."""
        names = list(self.trees)
        first = self.trees[names[0]]
        for name in names[1:]:
            other = self.trees[name]
            diff = {
                p: (_short(first.get(p)), _short(other.get(p)))
                for p in sorted(set(first) | set(other))
                if first.get(p) != other.get(p)
            }
            assert not diff, f"folders of {names[0]} and {name} differ: {diff}"
        assert self.quiet, "never quiet: " + "\n".join(self.log[-len(self.trees) :])
        return first


def _short(entry: Optional[tuple[bytes, int]]) -> object:
    if entry is None:
        return None
    data, mtime = entry
    return (data[:40] + (b"..." if len(data) > 40 else b""), mtime)


def settle(clients: Sequence[Client], max_passes: int = 6, *, confirm: bool = True) -> Settled:
    """Sync every client in turn, pass after pass, until a whole pass ends in sync (exit 0)
    everywhere with equal folders that did not change since the previous pass (quiet rounds;
    without ``confirm``, for a test's setup, the first pass in sync with equal folders ends it).
    Returns the last trees even when that never happens: the caller asserts."""
    log: list[str] = []
    previous: Optional[Tree] = None
    trees: dict[str, Tree] = {}
    for _ in range(max_passes):
        codes = []
        for client in clients:
            run = run_sync(client)
            codes.append(run.returncode)
            log.append(f"{client.name}: {run.stdout.strip()} {run.stderr.strip()}")
        trees = {c.name: visible_tree(c.root) for c in clients}
        values = list(trees.values())
        equal = all(t == values[0] for t in values)
        if equal and not any(codes) and (values[0] == previous or not confirm):
            return Settled(trees, True, log)
        previous = values[0] if equal else None
    return Settled(trees, False, log)


def relay_root(cluster: Cluster) -> Path:
    return Path(cluster.relay.removeprefix("file://"))


def relay_files(cluster: Cluster, folder: str) -> list[Path]:
    """The committed objects under ``folder`` of the relay (no ``.tmp-*`` files)."""
    base = relay_root(cluster) / folder
    if not base.is_dir():
        return []
    return [p for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")]


def withhold_newest_manifest(cluster: Cluster) -> str:
    """The relay loses (withholds) the most recently published manifest; return its name."""
    newest = max(relay_files(cluster, "updates"), key=lambda p: p.stat().st_mtime_ns)
    newest.unlink()
    return newest.relative_to(relay_root(cluster)).as_posix()


def present_in(client: Client, rel: str, content: bytes) -> bool:
    """Whether ``content`` is in ``client``'s folder at ``rel`` or in a conflict copy of it,
    or anywhere among its kept previous versions."""
    path = client.root / rel
    folder = path.parent
    stem = path.name.rsplit(".", 1)[0] if "." in path.name else path.name
    candidates = [path]
    if folder.is_dir():
        candidates += [p for p in folder.iterdir() if p.name.startswith(stem + CONFLICT)]
    for candidate in candidates:
        try:
            if candidate.is_file() and candidate.read_bytes() == content:
                return True
        except FileNotFoundError:
            pass
    return content in kept_versions(client).values()


def conflict_copies(tree: Tree) -> list[str]:
    return sorted(p for p in tree if CONFLICT in p)


def utc_stamp(mtime_ns: int) -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(mtime_ns // SEC))


# -- deletions ---------------------------------------------------------------------------


def test_deletion_reaches_a_client_that_missed_it_through_a_full_resend(
    cluster: Cluster,
) -> None:
    # default pullers = 1: an update is collected as soon as one other client applied it
    a, b, c = cluster.add("ann"), cluster.add("ben"), cluster.add("cat")
    put(a, "f.txt", "to be deleted", T0)
    put(a, "keep.txt", "stays", T0 + SEC)
    start = settle([a, b, c], confirm=False)
    start.assert_converged()
    assert "f.txt" in start.trees["cat"]

    (a.root / "f.txt").unlink()
    run_sync(a)  # publishes the deletion
    run_sync(b)  # applies it; the update is collected (one puller acknowledged it)
    # cat missed it: it asks for a full re-send (cat, then ann and ben, then cat again...)
    final = settle([c, a, b])
    for name, files in final.trees.items():
        assert "f.txt" not in files, f"the deleted f.txt is still (or again) at {name}"
    assert set(final.assert_converged()) == {"keep.txt"}


def test_deletion_reaches_clients_that_missed_its_withheld_update(cluster: Cluster) -> None:
    a, b, c = cluster.add("ann"), cluster.add("ben"), cluster.add("cat")
    put(a, "f.txt", "to be deleted", T0)
    put(a, "keep.txt", "stays", T0 + SEC)
    settle([a, b, c], confirm=False).assert_converged()

    (a.root / "f.txt").unlink()
    run_sync(a)
    withheld = withhold_newest_manifest(cluster)  # ben and cat will see a gap
    assert withheld.startswith("updates/")
    final = settle([b, c, a])
    for name, files in final.trees.items():
        assert "f.txt" not in files, f"the deleted f.txt is still (or again) at {name}"
    assert set(final.assert_converged()) == {"keep.txt"}


def test_full_resend_from_a_client_that_missed_a_deletion_never_brings_the_file_back(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.add("ann"), cluster.add("ben"), cluster.add("cat")
    put(a, "f.txt", "to be deleted", T0)
    put(a, "keep.txt", "stays", T0 + SEC)
    settle([a, b, c], confirm=False).assert_converged()

    put(c, "from cat.txt", "new at cat", T0 + 2 * SEC)
    run_sync(c)
    withhold_newest_manifest(cluster)  # ann will miss cat's update and ask it for everything
    (a.root / "f.txt").unlink()
    run_sync(a)  # publishes the deletion; sees the gap in cat's updates
    run_sync(c)  # re-sends everything it has (it has not seen the deletion yet), then pulls
    run_sync(a)  # applies cat's re-send
    assert not (a.root / "f.txt").exists(), "a re-send brought f.txt back to ann, who deleted it"
    final = settle([b, a, c])
    for name, files in final.trees.items():
        assert "f.txt" not in files, f"the deleted f.txt is still (or again) at {name}"
    tree = final.assert_converged()
    assert tree["from cat.txt"] == (b"new at cat", T0 + 2 * SEC)
    assert set(tree) == {"keep.txt", "from cat.txt"}


# -- edits -------------------------------------------------------------------------------


def test_edit_with_an_older_mtime_replaces_the_version_it_was_built_on_everywhere(
    cluster: Cluster,
) -> None:
    a, b, c = (cluster.add(n, extra="pullers = 1") for n in ("ann", "ben", "cat"))
    put(a, "f.txt", "the first version", T0 + 100 * SEC)
    put(a, "other.txt", "unchanged", T0)
    settle([a, b, c], confirm=False).assert_converged()

    # a file restored with its (older) date: a new version, built on the one everyone has
    put(a, "f.txt", "restored from a backup, older mtime", T0)
    run_sync(a)
    run_sync(b)  # the update is collected: cat gets the edit through a full re-send
    final = settle([c, a, b])
    for name, files in final.trees.items():
        assert files.get("f.txt") == (b"restored from a backup, older mtime", T0), (
            f"{name} has {_short(files.get('f.txt'))} instead of ann's edit"
        )
        assert not conflict_copies(files), f"{name}: {conflict_copies(files)}"
    assert set(final.assert_converged()) == {"f.txt", "other.txt"}


# -- conflicts ---------------------------------------------------------------------------


@pytest.mark.parametrize("pullers", [3, 1], ids=["pullers=3", "pullers=1"])
def test_concurrent_edits_leave_the_same_conflict_copies_everywhere_named_after_their_authors(
    cluster: Cluster, pullers: int
) -> None:
    # with pullers = 1 updates are collected after one reader: the others get the versions
    # through full re-sends, i.e. forwarded by clients that did not author them
    clients = [cluster.add(n, extra=f"pullers = {pullers}") for n in ("west", "xu", "yan", "zoe")]
    west, xu, yan, zoe = clients
    put(west, "docs/f.txt", "the common version", T0)
    settle(clients, confirm=False).assert_converged()

    # three concurrent edits of the version everyone has; xu's is the latest
    edits = {
        "xu": (b"xu's edit, the latest", T0 + 300 * SEC + 5),
        "yan": (b"yan's edit, the oldest", T0 + 100 * SEC + 7),
        "zoe": (b"zoe's edit, in between", T0 + 200 * SEC + 9),
    }
    for client in (xu, yan, zoe):
        put(client, "docs/f.txt", *edits[client.name])
    final = settle([xu, yan, zoe, west], max_passes=8)
    expected = {"docs/f.txt": edits["xu"]}
    for loser in ("yan", "zoe"):
        data, mtime = edits[loser]
        expected[f"docs/f.sync-conflict-{utc_stamp(mtime)}-{loser}.txt"] = (data, mtime)
    for name, files in final.trees.items():
        names = sorted(files)
        assert not [p for p in names if p.count("sync-conflict") > 1], f"{name}: copy of a copy"
        got = {p: files[p][0] for p in names}
        assert got == {p: v[0] for p, v in expected.items()}, f"{name} has {names}"
    tree = final.assert_converged()
    assert tree["docs/f.txt"] == edits["xu"]


@pytest.mark.parametrize("folder_by", ["alice", "bob"])
def test_two_versions_of_one_author_named_alike_as_copies_the_later_keeps_the_name_everywhere(
    cluster: Cluster, folder_by: str
) -> None:
    """Alice writes ``p`` twice within one second; Bob wrote his own ``p``, which beats her
    first version and loses to her second (a later generation); one of them then replaces
    ``p`` by a folder, so every version of ``p`` ends as a conflict copy. A copy is named after
    its author and the second of its mtime: Alice's two versions share one name. The later,
    which has seen the earlier, keeps it on every client and the earlier is kept as a previous
    version. Before, one update could write that name twice (the index recorded one version
    over the other's bytes), or a copy could not be linked where the earlier stood (the update
    was deferred forever): the folders never converged."""
    alice, bob = (cluster.add(name, extra="pullers = 1") for name in ("alice", "bob"))
    first, second = b"alice's first p", b"alice's 2nd p"
    put(alice, "p", first, T0 + 100_000_000)
    run_sync(alice)
    put(alice, "p", second, T0 + 600_000_000)  # the same second: the same copy name
    if folder_by == "alice":  # Bob meets both versions in one round, then Alice's folder
        run_sync(alice)
        (alice.root / "p").unlink()
        put(alice, "p/q", "the folder now", T0 + 2 * SEC)
    put(bob, "p", "bob's p", T0 + SEC)  # later than alice's first version, so it beats it
    run_sync(bob)
    if folder_by == "bob":  # Bob's folder meets Alice's second version
        (bob.root / "p").unlink()
        put(bob, "p/q", "the folder now", T0 + 2 * SEC)
    tree = settle([alice, bob], max_passes=8).assert_converged()
    copy = f"p.sync-conflict-{utc_stamp(T0)}-alice"
    assert tree[copy][0] == second
    assert tree[f"p.sync-conflict-{utc_stamp(T0 + SEC)}-bob"][0] == b"bob's p"
    assert tree["p/q"][0] == b"the folder now"
    assert any(present_in(c, copy, first) for c in (alice, bob))  # as a previous version


# -- a client whose state was lost -------------------------------------------------------


def test_client_that_lost_its_state_never_reuses_sequence_numbers_others_acknowledged(
    cluster: Cluster,
) -> None:
    a, b = cluster.add("ann"), cluster.add("ben")
    put(a, "f.txt", "version 0", T0)
    run_sync(a)
    clients = relay_files(cluster, "clients")
    assert len(clients) == 1, clients  # ann's client state, the only one yet
    ann_state = clients[0]
    early = ann_state.read_bytes()  # what the relay will replay later
    ann_cid = ann_state.name
    run_sync(b)
    for i in range(1, 4):  # more updates of ann, each acknowledged by ben
        put(a, f"file{i}.txt", f"update {i}", T0 + i * SEC)
        run_sync(a)
        run_sync(b)
    assert visible_tree(b.root) == visible_tree(a.root)

    # ann loses its local state, the relay replays its early client state, and ann's updates
    # are gone (collected, or lost by the relay)
    shutil.rmtree(cluster.base / "ann" / "state")
    ann_state.write_bytes(early)
    for folder in (f"updates/{ann_cid}", f"data/{ann_cid}"):
        shutil.rmtree(relay_root(cluster) / folder, ignore_errors=True)

    put(a, "new.txt", "created after the state was lost", T0 + 10 * SEC)
    put(a, "f.txt", "version 1, edited after the state was lost", T0 + 11 * SEC)
    final = settle([a, b])
    ben = final.trees["ben"]
    assert ben.get("new.txt") == (b"created after the state was lost", T0 + 10 * SEC), (
        "ben never received ann's new file"
    )
    assert ben.get("f.txt") == (b"version 1, edited after the state was lost", T0 + 11 * SEC), (
        f"ben has f.txt = {_short(ben.get('f.txt'))}, not ann's edit"
    )
    final.assert_converged()


def test_a_client_rejoining_on_an_empty_folder_never_deletes_what_its_first_pull_brought(
    cluster: Cluster,
) -> None:
    """A new machine under an old client's name: its first round pulls before it pushes, and
    the push must see the files that pull placed (a scan taken before it took them for
    deleted, and every other client lost them)."""
    a, b = cluster.add("ann"), cluster.add("ben")
    put(a, "old.txt", "from before", T0)
    settle([a, b], confirm=False).assert_converged()
    shutil.rmtree(cluster.base / "ben" / "state")
    for path in b.root.iterdir():
        if path.name != ".escale":
            path.unlink()
    put(a, "new.txt", "written while ben was away", T0 + SEC)
    run_sync(a)
    run_sync(b)
    assert (b.root / "new.txt").read_text() == "written while ben was away"
    run_sync(a)
    assert (a.root / "new.txt").read_text() == "written while ben was away", "ann lost it"
    settle([a, b]).assert_converged()


# -- previous versions -------------------------------------------------------------------


def test_file_replaced_or_deleted_by_a_pull_is_kept_under_escale_versions(
    cluster: Cluster,
) -> None:
    a, b = cluster.add("ann"), cluster.add("ben")
    put(a, "docs/sub/report.txt", "report, first version", T0)
    put(a, "docs/gone.md", "deleted later", T0 + SEC)
    put(a, "README", "no extension", T0 + 2 * SEC)
    settle([a, b], confirm=False).assert_converged()

    put(a, "docs/sub/report.txt", "report, second version", T0 + 10 * SEC)
    put(a, "README", "no extension, edited", T0 + 11 * SEC)
    (a.root / "docs/gone.md").unlink()
    run_sync(a)
    run_sync(b)
    assert (b.root / "docs/sub/report.txt").read_bytes() == b"report, second version"
    assert not (b.root / "docs/gone.md").exists()

    kept = kept_versions(b)
    expected = {
        ("docs/sub", "report", ".txt"): b"report, first version",
        ("docs", "gone", ".md"): b"deleted later",
        ("", "README", ""): b"no extension",
    }
    for (folder, stem, ext), content in expected.items():
        pattern = re.compile(
            rf"^{re.escape(folder + '/' if folder else '')}{re.escape(stem)}"
            rf"~([0-9]{{8}}-[0-9]{{6}})(-[0-9]+)?{re.escape(ext)}$"
        )
        matches = [(p, m) for p in kept if (m := pattern.match(p))]
        assert len(matches) == 1, f"{folder}/{stem}{ext}: kept versions {sorted(kept)}"
        name, match = matches[0]
        time.strptime(match.group(1), "%Y%m%d-%H%M%S")  # a real date and time
        assert kept[name] == content
    assert len(kept) == len(expected), sorted(kept)
    # the versions folder is never synced: nothing of it reaches ann
    settle([b, a], confirm=False).assert_converged()
    assert kept_versions(a) == {}


# -- a user writing while pulls run ------------------------------------------------------


class Writer(threading.Thread):
    """A user process rewriting files in place (open, truncate, write) with unique contents,
    each write of a path one byte longer than the one before (no two look alike to a stat).

    Before each write it reads the file: content that is not what it wrote last was taken
    away by someone else (the sync), and is recorded in ``replaced``: it must be kept."""

    def __init__(self, root: Path, paths: Sequence[str]) -> None:
        super().__init__(daemon=True)
        self.root, self.paths = root, list(paths)
        self.last: dict[str, bytes] = {}
        self.replaced: list[tuple[str, bytes]] = []
        self.writes = 0
        self.go = threading.Event()
        self.halt = threading.Event()
        self.error: Optional[BaseException] = None

    def write(self, rel: str) -> None:
        path = self.root / rel
        try:
            current: Optional[bytes] = path.read_bytes()
        except OSError:
            current = None
        previous = self.last.get(rel)
        if previous is not None and current != previous:
            self.replaced.append((rel, previous))
        self.writes += 1
        data = f"{rel}: write {self.writes} by the user, {uuid.uuid4().hex}\n".encode()
        data += b"." * self.writes
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as out:
                out.write(data)
        except OSError:  # its folder was being moved into place: try again next time
            return
        self.last[rel] = data

    def run(self) -> None:
        try:
            self.go.wait()
            while True:  # at least one pass: each path has a last write
                for rel in self.paths:
                    self.write(rel)
                if self.halt.is_set():
                    return
                time.sleep(0.005)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def stop(self) -> None:
        self.go.set()
        self.halt.set()
        self.join(timeout=30)
        assert self.error is None, repr(self.error)


def wait_for_activity(client: Client, proc: subprocess.Popen[str], before: set[str]) -> bool:
    """Wait until the sync process ``proc`` puts something new in the folder's top level (a
    staged file or folder, a new file or folder of the update: the pull is writing), exits, or
    has run for 10 s; return whether it was still running then."""
    deadline = time.monotonic() + 10
    while proc.poll() is None and time.monotonic() < deadline:
        if set(os.listdir(client.root)) - before:
            break
        time.sleep(0.001)
    return proc.poll() is None


def finish(client: Client, proc: subprocess.Popen[str]) -> None:
    out, err = proc.communicate(timeout=300)
    if proc.returncode not in (0, 1) or "Traceback" in err:
        raise AssertionError(f"{client.name}: exit {proc.returncode}\n{out}\n{err}")


def fill(client: Client, folder: str, count: int, size: int = 64 * KIB) -> None:
    for i in range(count):
        put(client, f"{folder}/{i:04d}.bin", os.urandom(size), T0 + i)


def assert_kept(client: Client, contents: Sequence[tuple[str, bytes]]) -> None:
    lost = [(rel, data[:60]) for rel, data in contents if not present_in(client, rel, data)]
    assert not lost, (
        f"user writes lost at {client.name} (not at their path, in a conflict copy or in "
        f"{VERSIONS}): {lost}; versions kept: {sorted(kept_versions(client))}"
    )


def test_user_edits_made_while_a_pull_runs_are_never_overwritten(cluster: Cluster) -> None:
    a, b = cluster.add("ann"), cluster.add("ben")
    put(a, "t.txt", "the target, first version", T0)
    settle([a, b], confirm=False).assert_converged()

    # a large update: 300 new files in a new folder, a new n.txt, and an edit of t.txt
    fill(a, "bulk", 300)
    put(a, "n.txt", "created by ann", T0 + 5 * SEC)
    put(a, "t.txt", "the target, edited by ann", T0 + 6 * SEC)
    run_sync(a)

    writer = Writer(b.root, ["t.txt", "n.txt", "bulk/0042.bin"])
    writer.start()
    before = set(os.listdir(b.root))
    proc = b.start_sync()
    running = wait_for_activity(b, proc, before)
    writer.go.set()  # the user writes until the sync process exits
    try:
        finish(b, proc)
    finally:
        writer.stop()
    assert running, "the pull ended before it wrote anything to the folder: no race was tried"

    final = settle([b, a])
    assert_kept(b, list(writer.last.items()))
    # whatever the sync took away from under the user was kept too
    assert_kept(b, writer.replaced)
    tree = final.assert_converged()
    assert len([p for p in tree if p.startswith("bulk/")]) >= 300


def test_user_writing_during_several_rounds_while_another_client_pushes_loses_nothing(
    cluster: Cluster,
) -> None:
    a, b = cluster.add("ann"), cluster.add("ben")
    paths = ["top.txt", "w/one.txt", "w/two.txt", "w/new1.txt", "fresh/new2.txt"]
    for rel in paths[:3]:
        put(a, rel, f"{rel}: the common version", T0)
    settle([a, b], confirm=False).assert_converged()

    writer = Writer(b.root, paths)
    writer.start()
    writer.go.set()
    try:
        for round_ in range(3):  # ann edits the same paths; both sync at the same time
            for i, rel in enumerate(paths):
                # mtimes in distinct seconds: two losing versions of one author in the same
                # second would get the same conflict copy name (a separate problem)
                put(a, rel, f"{rel}: ann, round {round_}\n", T0 + (10 * round_ + i) * SEC)
            procs = [(a, a.start_sync()), (b, b.start_sync())]
            for client, proc in procs:
                finish(client, proc)
    finally:
        writer.stop()

    # then the user's last writes land while ben pulls an edit of every path built on them
    settle([b, a], max_passes=4, confirm=False)
    for i, rel in enumerate(paths):
        put(a, rel, f"{rel}: ann's final edit\n", T0 + (100 + i) * SEC)
    fill(a, "filler", 150)
    run_sync(a)
    before = set(os.listdir(b.root))
    proc = b.start_sync()
    wait_for_activity(b, proc, before)
    for rel in paths:
        writer.write(rel)
    finish(b, proc)

    final = settle([b, a])
    assert_kept(b, list(writer.last.items()))
    final.assert_converged()
