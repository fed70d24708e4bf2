"""A path that changes type: a file replaced by a folder of the same name, or a folder by a
file. The update that carries the change deletes the old type before it places the new one, so
every client follows in one round; a clash it cannot resolve refuses the whole update before
anything of it is placed."""

from __future__ import annotations

import shutil

from .clients import Cluster, tree, versions


def test_a_file_replaced_by_a_folder_of_the_same_name_follows_in_one_round(
    cluster: Cluster,
) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    a.write("notes", "a file at first")
    a.write("other.txt", "unchanged")
    a.sync()
    b.sync()
    (a.root / "notes").unlink()
    a.write("notes/today.txt", "now a folder")
    a.sync()
    run = b.sync()
    assert "Traceback" not in run.stderr and run.stderr.strip() == "", run.stderr
    assert sorted(tree(b.root)) == ["notes/today.txt", "other.txt"]
    assert (b.root / "notes/today.txt").read_text() == "now a folder"
    assert list(versions(b.root).values()) == [b"a file at first"]  # the old file is kept
    assert tree(a.root) == tree(b.root)


def test_a_folder_replaced_by_a_file_of_the_same_name_follows_in_one_round(
    cluster: Cluster,
) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    a.write("build/one.o", "1")
    a.write("build/two.o", "2")
    a.sync()
    b.sync()
    shutil.rmtree(a.root / "build")
    a.write("build", "now a file")
    a.sync()
    run = b.sync()
    assert run.stderr.strip() == "", run.stderr
    assert tree(b.root) == tree(a.root)
    assert (b.root / "build").read_text() == "now a file"
    assert sorted(versions(b.root).values()) == [b"1", b"2"]


def test_a_folder_holding_local_files_is_never_replaced_and_nothing_of_the_update_is_placed(
    cluster: Cluster,
) -> None:
    a = cluster.add("alice")
    b = cluster.add("bob", extra='exclude = ["*.tmp"]')
    a.write("first.txt", "1")
    a.write("report", "a file named like bob's folder")
    b.write("report/draft.tmp", "bob's excluded file")  # never synced, so never deleted
    a.sync()
    run = b.sync(check=False)
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "report" in errors[0] and "folder" in errors[0], errors
    assert not (b.root / "first.txt").exists()  # the update is whole or not at all
    assert (b.root / "report/draft.tmp").read_text() == "bob's excluded file"
