"""``escale status`` and ``escale access`` on real clients."""

from __future__ import annotations

import json

import pytest

from escale_core.cli.access_cmd import parse_modifiers
from escale_core.errors import UsageError

from .clients import Cluster


def test_status_reports_pending_work_and_relay_usage(cluster: Cluster) -> None:
    a, b = cluster.add("a"), cluster.add("b")
    a.write("one.txt", "1")
    a.sync()
    a.write("two.txt", "2")
    import subprocess

    run = subprocess.run(b.command("status", "--json"), capture_output=True, text=True, env=b.env)
    assert run.returncode == 0, run.stderr
    (status,) = json.loads(run.stdout).values()
    assert status["last_sync"] is None and status["pending_down"] == 1
    assert status["relay_usage"] > 0 and status["error"] is None
    run = subprocess.run(a.command("status"), capture_output=True, text=True, env=a.env)
    assert "1 to push" in run.stdout and "in sync" in run.stdout


def test_access_r_minus_keeps_a_file_from_being_uploaded(cluster: Cluster) -> None:
    import subprocess

    a, b = cluster.add("a"), cluster.add("b")
    secret = a.write("secret.txt", "private")
    a.write("public.txt", "public")
    run = subprocess.run(
        a.command("access", str(secret), "r-"), capture_output=True, text=True, env=a.env
    )
    assert run.stdout.strip() == "r-w? secret.txt"
    a.sync()
    b.sync()
    assert sorted(p.name for p in b.root.iterdir() if p.name != ".escale") == ["public.txt"]


def test_access_w_minus_keeps_a_file_from_being_overwritten(cluster: Cluster) -> None:
    import subprocess

    a, b = cluster.add("a"), cluster.add("b")
    a.write("f.txt", "v1")
    a.sync()
    b.sync()
    subprocess.run(
        b.command("access", str(b.root / "f.txt"), "w-"), check=True, env=b.env, capture_output=True
    )
    a.write("f.txt", "v2 longer")
    a.sync()
    b.sync()
    assert (b.root / "f.txt").read_text() == "v1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("r-w+", {"r": False, "w": True}),
        ("rw", {"r": True, "w": True}),
        ("w?", {"w": None}),
        ("r", {"r": True}),
    ],
)
def test_modifiers_follow_the_original_syntax(text: str, expected: dict) -> None:
    assert parse_modifiers(text) == expected


@pytest.mark.parametrize("text", ["", "x", "r+x", "+r", "rw!"])
def test_bad_modifiers_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        parse_modifiers(text)
