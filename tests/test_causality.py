"""Version vectors and the decision between two versions of a path: properties that make every
client decide alike, whatever order it sees the versions in."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from escale_core.causality import Outcome, Version, conflict_copy, conflict_name, reconcile
from escale_core.vectors import Order, bump, compare, dominates, dumps, loads, merge

CLIENTS = ["a" * 32, "b" * 32, "c" * 32]
NAMES = {CLIENTS[0]: "alice", CLIENTS[1]: "bob", CLIENTS[2]: "carol"}

vectors = st.dictionaries(st.sampled_from(CLIENTS), st.integers(1, 6), max_size=3)


@st.composite
def versions(draw: st.DrawFn) -> Version:
    """A version made by one of the clients (its dot is in its vector)."""
    vector = draw(vectors)
    author = draw(st.sampled_from(CLIENTS))
    vector[author] = vector.get(author, 0) + draw(st.integers(1, 3))
    checksum = draw(st.sampled_from([None, "c1", "c2", "c3"]))
    mtime = draw(st.sampled_from([10**18, 2 * 10**18, 3 * 10**18]))
    made = draw(st.integers(1, vector[author]))  # a merged context may hold later changes
    return Version(vector, author, NAMES[author], mtime, checksum, made)


def made(version: Version) -> tuple[object, ...]:
    """What a version is, without the context it accumulated."""
    return (version.author, version.dot, version.checksum, version.mtime_ns, version.name)


@given(vectors, vectors)
def test_compare_is_antisymmetric(a: dict[str, int], b: dict[str, int]) -> None:
    mirrored = {
        Order.GREATER: Order.LESSER,
        Order.LESSER: Order.GREATER,
        Order.EQUAL: Order.EQUAL,
        Order.CONCURRENT: Order.CONCURRENT,
    }
    assert compare(b, a) is mirrored[compare(a, b)]


@given(vectors, vectors)
def test_merge_dominates_both_and_is_the_least_such_vector(
    a: dict[str, int], b: dict[str, int]
) -> None:
    merged = merge(a, b)
    assert dominates(merged, a) and dominates(merged, b)
    assert all(merged[c] in (a.get(c), b.get(c)) for c in merged)


@given(vectors, st.sampled_from(CLIENTS), st.integers(1, 100))
def test_a_change_descends_from_the_version_it_was_made_on(
    base: dict[str, int], cid: str, seq: int
) -> None:
    assert compare(bump(base, cid, seq), base) is Order.GREATER


@given(vectors)
def test_vectors_survive_the_local_state_encoding(vector: dict[str, int]) -> None:
    assert loads(dumps(vector)) == vector


@given(versions(), versions())
def test_both_sides_of_a_conflict_reach_the_same_path_content_and_copy(
    one: Version, other: Version
) -> None:
    """Client X holds ``one`` and receives ``other``; client Y the reverse: both end with the
    same version at the path and the same conflict copy."""
    at_x, at_y = reconcile(one, other), reconcile(other, one)
    if one.has_seen(other) or other.has_seen(one):
        return  # one replaced the other: nothing to decide
    assert made(at_x.winner) == made(at_y.winner)  # the path's content and its event
    assert (at_x.loser is None) == (at_y.loser is None)
    if at_x.loser is not None:
        assert conflict_copy("f.txt", at_x.loser) == conflict_copy("f.txt", at_y.loser)  # type: ignore[arg-type]


def test_a_version_that_replaced_the_winner_beats_what_lost_to_it_whatever_the_times() -> None:
    """w0 (bob) and w1 (alice, later) conflict: w1 wins. Alice then deletes w1, at an old
    time. A client that meets the deletion and w0 first, without w1, decides as one that saw
    all three: the deletion (a later generation) wins, w0 is kept as its copy."""
    w0 = Version({CLIENTS[1]: 1}, CLIENTS[1], "bob", 2 * 10**18, "c0", 1, 1)
    w1 = Version({CLIENTS[0]: 1}, CLIENTS[0], "alice", 3 * 10**18, "c1", 1, 1)
    deletion = Version({CLIENTS[0]: 2}, CLIENTS[0], "alice", 10**18, None, 2, 2)
    assert reconcile(w0, w1).winner == w1
    assert reconcile(w1, deletion).outcome is Outcome.TAKE  # it has seen w1
    direct = reconcile(w0, deletion)
    assert direct.winner == deletion and direct.loser == w0


def test_the_conflict_copy_carries_the_losers_dot_and_is_named_after_its_author() -> None:
    loser = Version(
        {CLIENTS[0]: 3, CLIENTS[1]: 9}, CLIENTS[1], "bob", 1_600_000_000 * 10**9, "c", 7
    )
    path, copy = conflict_copy("docs/report.final.txt", loser)
    assert path == "docs/report.final.sync-conflict-20200913-122640-bob.txt"
    assert copy.vector == {CLIENTS[1]: 7} and copy.dot == 7
    assert conflict_name("Makefile", 0, "a b/c") == "Makefile.sync-conflict-19700101-000000-a_b_c"


def test_an_edit_wins_over_a_concurrent_deletion_of_the_same_generation() -> None:
    edit = Version({CLIENTS[0]: 2}, CLIENTS[0], "alice", 1, "c1", 2, 2)
    deletion = Version({CLIENTS[1]: 5}, CLIENTS[1], "bob", 10**18, None, 5, 2)
    assert reconcile(deletion, edit).outcome is Outcome.TAKE
    assert reconcile(edit, deletion).outcome is Outcome.KEEP_LOCAL
    assert reconcile(edit, deletion).loser is None  # nothing to keep of a deletion


def test_a_deletion_of_a_later_generation_wins_and_the_edit_is_kept_as_a_copy() -> None:
    edit = Version({CLIENTS[0]: 2}, CLIENTS[0], "alice", 10**18, "c1", 2, 2)
    deletion = Version({CLIENTS[1]: 5}, CLIENTS[1], "bob", 1, None, 5, 3)
    assert reconcile(edit, deletion).outcome is Outcome.TAKE
    assert reconcile(edit, deletion).loser == edit


def test_a_newer_version_with_an_older_mtime_still_replaces_the_old_one() -> None:
    old = Version({CLIENTS[0]: 1}, CLIENTS[0], "alice", 2 * 10**18, "c1", 1, 1)
    newer = Version({CLIENTS[0]: 2}, CLIENTS[0], "alice", 10**18, "c2", 2, 2)
    decision = reconcile(old, newer)
    assert decision.outcome is Outcome.TAKE and decision.winner == newer
    assert reconcile(newer, old).outcome is Outcome.IGNORE


@settings(max_examples=20)
@given(vectors)
def test_equal_vectors_dump_to_one_text_in_any_order_even_once_the_cache_is_full(
    vector: dict[str, int],
) -> None:
    from escale_core import vectors as module

    backwards = dict(reversed(list(vector.items())))
    assert dumps(vector) == dumps(backwards) == dumps(dict(sorted(vector.items())))
    for seq in range(module._DUMPED_MAX + 1):  # fill the cache past its bound
        assert loads(dumps({CLIENTS[0]: seq + 1})) == {CLIENTS[0]: seq + 1}
    assert len(module._DUMPED) <= module._DUMPED_MAX
    assert loads(dumps(vector)) == vector
