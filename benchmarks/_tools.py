"""The tools compared: how each copies A → relay R → B, or runs an idle round over A.

Every function receives a fresh :class:`RunDirs` whose A is already a copy of the source tree
and returns the :class:`~_measure.Sample` of its timed steps only; set-up (``restic init``,
configuration files, the first sync before an idle round) runs untimed.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

from _measure import BenchmarkError, Sample, measure, run_untimed

PASSPHRASE = "benchmark passphrase"
ESCALE = [sys.executable, "-m", "escale_core"]
RCLONE = ["rclone", "--config", "/dev/null"]  # never read the user's rclone.conf


@dataclass(frozen=True)
class RunDirs:
    """The folders of one run: the source tree and a fresh work folder holding A, R and B."""

    source: Path
    work: Path

    @property
    def a(self) -> Path:
        return self.work / "A"

    @property
    def r(self) -> Path:
        return self.work / "R"

    @property
    def b(self) -> Path:
        return self.work / "B"

    def prepare(self) -> None:
        """Create the work folder and copy the source into A (untimed), then write all dirty
        data to disk: a tool that syncs (escale, restic) must not pay for the set-up's copy."""
        self.work.mkdir(parents=True)
        run_untimed(["cp", "-a", self.source, self.a])
        os.sync()


Step = Callable[[RunDirs], Sample]


@dataclass(frozen=True)
class Tool:
    """A tool of the comparison.

    :param name: its name in ``--tools`` and in the table.
    :param binary: the executable it needs on PATH (none for escale itself).
    :param transfer: A → R → B, for W1, W2, W3, W5 and W6.
    :param idle: the timed idle round over A, for W4.
    :param restored: where B's copy of A ends up (restic may nest it).
    """

    name: str
    binary: Optional[str] = None
    transfer: Optional[Step] = None
    idle: Optional[Step] = None
    restored: Callable[[RunDirs], Path] = lambda dirs: dirs.b


def cp_transfer(dirs: RunDirs) -> Sample:
    """``cp -r A R && cp -r R B``."""
    return measure(["cp", "-r", dirs.a, dirs.r]) + measure(["cp", "-r", dirs.r, dirs.b])


def find_idle(dirs: RunDirs) -> Sample:
    """``find A -printf '%s %T@\\n'``: one stat per file, the floor of any change scan."""
    return measure(["find", dirs.a, "-printf", "%s %T@\n"])


def rclone_transfer(dirs: RunDirs) -> Sample:
    """``rclone copy A R && rclone copy R B`` between local paths."""
    first = measure([*RCLONE, "copy", dirs.a, dirs.r])
    return first + measure([*RCLONE, "copy", dirs.r, dirs.b])


def rclone_idle(dirs: RunDirs) -> Sample:
    """A first ``rclone copy A R`` untimed, then the same again with nothing changed."""
    run_untimed([*RCLONE, "copy", dirs.a, dirs.r])
    return measure([*RCLONE, "copy", dirs.a, dirs.r])


@functools.cache
def rclone_obscured(password: str) -> str:
    """``rclone obscure PASSWORD``: the form rclone expects in a config or env var."""
    return run_untimed([*RCLONE, "obscure", password]).strip()


def crypt_env(relay: Union[Path, str]) -> dict[str, str]:
    """Environment defining the remote ``benchcrypt:`` as a crypt remote over ``relay``."""
    return {
        **os.environ,
        "RCLONE_CONFIG_BENCHCRYPT_TYPE": "crypt",
        "RCLONE_CONFIG_BENCHCRYPT_REMOTE": str(relay),
        "RCLONE_CONFIG_BENCHCRYPT_PASSWORD": rclone_obscured(PASSPHRASE),
    }


def rclone_crypt_transfer(dirs: RunDirs) -> Sample:
    """``rclone copy A benchcrypt: && rclone copy benchcrypt: B`` (names and content encrypted)."""
    env = crypt_env(dirs.r)
    first = measure([*RCLONE, "copy", dirs.a, "benchcrypt:"], env=env)
    return first + measure([*RCLONE, "copy", "benchcrypt:", dirs.b], env=env)


def restic_env(dirs: RunDirs) -> dict[str, str]:
    """Password and a per-run cache folder (not ~/.cache/restic)."""
    cache = str(dirs.work / "restic-cache")
    return {**os.environ, "RESTIC_PASSWORD": PASSPHRASE, "RESTIC_CACHE_DIR": cache}


def restic_transfer(dirs: RunDirs) -> Sample:
    """``restic init`` untimed; ``restic backup .`` inside A, then ``restic restore latest``."""
    env = restic_env(dirs)
    run_untimed(["restic", "--repo", dirs.r, "init"], env=env)
    backup = measure(["restic", "--repo", dirs.r, "backup", "."], cwd=dirs.a, env=env)
    restore: list[Union[str, Path]] = ["restic", "--repo", dirs.r, "restore", "latest"]
    restore += ["--target", dirs.b]
    return backup + measure(restore, env=env)


def restic_restored(dirs: RunDirs) -> Path:
    """B itself when the backup of ``.`` restored flat, else A's absolute path inside B."""
    nested = dirs.b / dirs.a.relative_to(dirs.a.anchor)
    return nested if nested.is_dir() else dirs.b


def toml_value(value: object) -> str:
    """A TOML literal for a string, number, boolean or list of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # JSON string escapes are valid TOML basic strings


def escale_config(dirs: RunDirs, client: str, relay: str, extra: str = "") -> Path:
    """Write the TOML configuration of client ``A`` or ``B`` (section ``s``), return its path."""
    key = dirs.work / "key"
    key.write_text(PASSPHRASE + "\n")
    key.chmod(0o600)  # as 'escale init' writes it (the unwrapped key is then cached)
    path = dirs.work / f"{client}.toml"
    path.write_text(
        f"state_dir = {toml_value(dirs.work / ('state-' + client))}\n"
        "[s]\n"
        f"path = {toml_value(dirs.work / client)}\n"
        f"relay = {toml_value(relay)}\n"
        f"client = {toml_value(client)}\n"
        f"passphrase_file = {toml_value(key)}\n"
        'encryption = "aes-256-gcm"\n'
        "pullers = 1\n"
        f"{extra}"
    )
    return path


def escale_sync(config: Path) -> list[str]:
    """The ``escale sync s`` command line for one configuration."""
    return [*ESCALE, "-c", str(config), "-q", "sync", "s"]


def escale_through(relay: Callable[[RunDirs], str], extra: str = "") -> Step:
    """escale's A → R → B: ``sync`` on A (push), then on B (pull), through ``relay(dirs)``."""

    def transfer(dirs: RunDirs) -> Sample:
        url = relay(dirs)
        dirs.b.mkdir()
        push = escale_config(dirs, "A", url, extra)
        pull = escale_config(dirs, "B", url, extra)
        return measure(escale_sync(push)) + measure(escale_sync(pull))

    return transfer


def escale_idle(dirs: RunDirs) -> Sample:
    """A first ``escale sync`` of A untimed, then a second one with nothing changed."""
    config = escale_config(dirs, "A", str(dirs.r))
    run_untimed(escale_sync(config))
    return measure(escale_sync(config))


def verify(a: Path, b: Path) -> None:
    """B holds the same files with the same content as A (``diff -rq``), else raise."""
    done = subprocess.run(["diff", "-rq", str(a), str(b)], capture_output=True, text=True)
    if done.returncode:
        lines = (done.stdout + done.stderr).splitlines()
        shown = "\n".join(lines[:10]) + ("\n…" if len(lines) > 10 else "")
        raise BenchmarkError(f"B differs from A ({len(lines)} difference(s)):\n{shown}")


def local_tools() -> list[Tool]:
    """Every tool on the local file relay, in table order (the baselines first)."""
    import _peers as peers  # it needs RunDirs from here

    return [
        Tool("cp", "cp", transfer=cp_transfer),
        Tool("find", "find", idle=find_idle),
        Tool("rclone", "rclone", transfer=rclone_transfer, idle=rclone_idle),
        Tool("rclone-crypt", "rclone", transfer=rclone_crypt_transfer),
        Tool("restic", "restic", transfer=restic_transfer, restored=restic_restored),
        Tool("unison", "unison", transfer=peers.unison_transfer, idle=peers.unison_idle),
        Tool("syncthing", "syncthing", transfer=peers.syncthing_transfer),
        Tool(
            "escale",
            transfer=escale_through(lambda dirs: str(dirs.r)),
            idle=escale_idle,
        ),
    ]
