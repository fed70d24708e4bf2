"""escale push and pull through each network server, beside plain ``rclone copy`` through it.

Usage::

    python benchmarks/relays.py [--servers ftp,webdav,sftp,s3,...] [--runs 3]
        [--files 1000] [--big-mib 200] [--output FILE.md] [--json FILE.json]

Each server of :data:`SERVERS` is started from ``tests/servers`` on 127.0.0.1. For each
workload (``--files`` files of 4 KiB in 10 folders, then one ``--big-mib`` MiB file), each of
``--runs`` runs pushes the tree with a real ``escale sync`` process (client A, aes-256-gcm, a
fresh repository) and pulls it with another (client B, a fresh folder), then ``rclone copy``
copies the same tree to a fresh folder of the same server and back (plain, no encryption). An
untimed ``sync`` runs before every timed step, so that no step pays for the writeback of the one
before; every copy is compared with the source, and both folders are purged from the server
after the run (untimed). The table gives medians over the runs; ``--json`` writes every run.

rclone reaches the server through an on-the-fly remote defined by environment variables
(``RCLONE_CONFIG_BENCHNET_*``, password obscured by ``rclone obscure``): the same as a
``:sftp,host=...:path`` connection string, without the password on the command line.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import pytest  # noqa: E402  (the start functions skip with pytest.skip when a server is missing)
from _measure import BenchmarkError, Sample, measure, run_untimed  # noqa: E402
from _tools import RCLONE, rclone_obscured, toml_value  # noqa: E402

from tests.servers import RelayServer  # noqa: E402

KIB4 = 4096
#: The folder escale keeps in a synced folder (previous versions...).
ESCALE_FOLDER = ".escale"


@dataclass(frozen=True)
class ServerEntry:
    """A server of ``tests/servers`` the benchmark runs against: one line of :data:`SERVERS`.

    :param key: its name for ``--servers``.
    :param label: what the table calls it (the server software).
    :param module: the module of ``tests.servers`` holding its start function.
    :param function: the start function; an entry whose function does not exist (a server
        another branch adds) is reported as not available, never an error.
    :param kwargs: keyword arguments of the start function.
    :param stop: a stop function of the module taking the server, when stopping the process is
        not all (Apache removes its served folder); else ``server.server.stop()``.
    """

    key: str
    label: str
    module: str
    function: str
    kwargs: Mapping[str, object] = field(default_factory=dict)
    stop: str = ""

    def start_function(self) -> Union[Callable[..., RelayServer], str]:
        """The start function, or why there is none."""
        try:
            module = importlib.import_module(f"tests.servers.{self.module}")
        except ImportError as exc:
            return f"tests.servers.{self.module} cannot be imported ({exc})"
        function = getattr(module, self.function, None)
        if not callable(function):
            return f"tests.servers.{self.module} has no {self.function}"
        return function  # type: ignore[no-any-return]

    def start(self, base: Path) -> RelayServer:
        """Start the server with its files under ``base`` (``pytest.skip`` if not installed).

        Start functions take ``(root, base)`` (the served folder, then the server's own
        files) or ``(base)`` alone (they choose the served folder)."""
        function = self.start_function()
        if isinstance(function, str):
            raise BenchmarkError(function)
        parameters = [
            p
            for p in inspect.signature(function).parameters.values()
            if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty
        ]
        base.mkdir(parents=True, exist_ok=True)
        if len(parameters) >= 2:
            (base / "root").mkdir()
            return function(base / "root", base, **self.kwargs)
        return function(base, **self.kwargs)

    def stop_server(self, server: RelayServer) -> None:
        """Stop the server (and clean what its stop function cleans)."""
        stop = getattr(importlib.import_module(f"tests.servers.{self.module}"), self.stop, None)
        if self.stop and callable(stop):
            stop(server)
        else:
            server.server.stop()


#: The servers, in table order. A server added to tests/servers is one line here.
SERVERS = (
    ServerEntry("ftp", "FTP (pyftpdlib)", "ftp", "start_ftp"),
    ServerEntry("vsftpd", "FTP (vsftpd)", "ftp", "start_vsftpd"),
    ServerEntry("proftpd", "FTP (ProFTPD)", "ftp", "start_proftpd"),
    ServerEntry("webdav", "WebDAV (WsgiDAV)", "webdav", "start_webdav"),
    ServerEntry("apache", "WebDAV (Apache mod_dav)", "apache", "start_apache", stop="stop_apache"),
    ServerEntry("sftp", "SFTP (OpenSSH sshd)", "sftp", "start_sftp"),
    ServerEntry("s3", "S3 (moto)", "s3", "start_s3", {"auth": False}),
    ServerEntry("rclone", "rclone relay (rclone serve webdav)", "rclone", "start_rclone"),
)


@dataclass(frozen=True)
class Remote:
    """An rclone remote reaching the folder of repositories of a server."""

    env: dict[str, str]  #: the environment defining it
    root: str  #: ``remote:path`` of the folder of repositories
    #: more rclone flags (RCLONE already says --config /dev/null: never the user's rclone.conf;
    #: a later --config wins)
    args: tuple[str, ...] = ()

    def folder(self, name: str) -> str:
        """``remote:path/name``."""
        return (
            f"{self.root.rstrip('/')}/{name}" if not self.root.endswith(":") else self.root + name
        )

    def run(self, *args: str) -> None:
        """An untimed rclone command."""
        run_untimed([*RCLONE, *self.args, *args], env=self.env)

    def timed(self, *args: str) -> Sample:
        """A timed rclone command."""
        return measure([*RCLONE, *self.args, *args], env=self.env)


def credentials(server: RelayServer) -> tuple[str, str]:
    """The user and password the server's section gives escale (``password`` or
    ``password_file``, whose ``user:password`` line overrides the address's user)."""
    user, password = urlsplit(server.url_prefix).username or "", ""
    for line in server.config.splitlines():
        key, _, value = line.partition("=")
        value = value.strip().strip('"')
        if key.strip() == "password":
            password = value
        elif key.strip() == "password_file":
            text = Path(value).read_text(encoding="utf-8").splitlines()[0]
            user, password = text.split(":", 1) if ":" in text else (user, text)
    return user, password


def remote_of(server: RelayServer) -> Remote:
    """The rclone remote ``benchnet:`` for ``server``, with the section's credentials."""
    url = urlsplit(server.url_prefix)
    if url.scheme == "rclone":  # the rclone relay: its own configuration names the remote
        config = str(server.relay_options["config"])
        return Remote(
            dict(os.environ), f"{url.hostname}:{url.path.lstrip('/')}", ("--config", config)
        )
    user, password = credentials(server)
    if url.scheme.startswith("ftp") and not password:
        # an anonymous login (vsftpd); rclone's ftp remote cannot go without a password
        password = "anonymous@"
    secret = rclone_obscured(password) if password else ""
    env: dict[str, str] = {"TYPE": "ftp" if url.scheme.startswith("ftp") else url.scheme}
    if url.scheme.startswith("webdav"):
        http = "https" if url.scheme == "webdavs" else "http"
        env.update(TYPE="webdav", URL=f"{http}://{url.hostname}:{url.port}{url.path}")
        env.update(VENDOR="other", USER=user, PASS=secret)
        path = ""
    elif url.scheme == "s3":
        endpoint = str(server.relay_options.get("endpoint_url", ""))
        env.update(PROVIDER="Other", ENDPOINT=endpoint, ACCESS_KEY_ID=user)
        env.update(SECRET_ACCESS_KEY=password)
        path = f"{url.hostname}{url.path}"
    else:  # ftp, sftp
        env.update(HOST=str(url.hostname), PORT=str(url.port), USER=user)
        keys = server.relay_options.get("client_keys")
        if isinstance(keys, list) and keys:
            env["KEY_FILE"] = str(keys[0])
        elif secret:
            env["PASS"] = secret
        path = url.path
    # rclone 1.60 cannot load AWS_CA_BUNDLE into its HTTP client, and the servers are plain
    inherited = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    defined = {f"RCLONE_CONFIG_BENCHNET_{k}": v for k, v in env.items()}
    return Remote({**inherited, **defined}, f"benchnet:{path}")


def write_tree(source: Path, workload: str, files: int, big_mib: int) -> str:
    """Make the workload's source tree; return its label."""
    source.mkdir(parents=True)
    if workload == "small":
        for i in range(files):
            folder = source / f"d{i % 10}"
            folder.mkdir(exist_ok=True)
            (folder / f"f{i:05d}").write_bytes(os.urandom(KIB4))
        return f"{files:,} × 4 KiB"
    with open(source / "big.bin", "wb") as out:
        for _ in range(big_mib):
            out.write(os.urandom(1 << 20))
    return f"1 × {big_mib} MiB"


def section(server: RelayServer, work: Path, name: str, folder: Path, relay: str) -> Path:
    """An escale configuration with one section ``s``: ``folder`` synced through ``relay``."""
    key = work / "passphrase"
    key.write_text("benchmark passphrase\n", encoding="utf-8")
    lines = [
        f"state_dir = {toml_value(str(work / ('state-' + name)))}",
        "[s]",
        f"path = {toml_value(str(folder))}",
        f"relay = {toml_value(relay)}",
        f"client = {toml_value(name)}",
        f"passphrase_file = {toml_value(str(key))}",
        server.config,
    ]
    if server.relay_options:
        lines.append("[s.relay_options]")
        lines += [f"{k} = {toml_value(v)}" for k, v in server.relay_options.items()]
    path = work / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def same_tree(a: Path, b: Path, what: str, *skip: str) -> None:
    """Raise unless ``b`` holds exactly ``a``'s files and bytes (but names in ``skip``)."""
    excluded = [f"--exclude={name}" for name in skip]
    diff = subprocess.run(
        ["diff", "-rq", *excluded, a, b], capture_output=True, text=True, check=False
    )
    if diff.returncode:
        first = "; ".join((diff.stdout + diff.stderr).splitlines()[:3])
        raise BenchmarkError(f"{what}: the copy differs from the source: {first}")


def synced(command: list[Union[str, Path]], env: Optional[Mapping[str, str]] = None) -> Sample:
    """``sync`` (untimed: the previous step's writeback), then ``command`` measured."""
    os.sync()
    return measure(command, env=env)


def escale_run(server: RelayServer, source: Path, work: Path, remote: Remote) -> dict[str, Sample]:
    """One escale push (client A) and pull (client B) through a fresh repository."""
    folder = f"bench-{uuid.uuid4().hex[:12]}"
    relay = server.url(folder)
    escale = [sys.executable, "-m", "escale_core", "-q"]
    work.mkdir(parents=True)
    push = synced([*escale, "-c", section(server, work, "A", source, relay), "sync", "s"])
    pull = synced([*escale, "-c", section(server, work, "B", work / "B", relay), "sync", "s"])
    same_tree(source, work / "B", f"escale through {server.url_prefix}")
    remote.run("purge", remote.folder(folder))
    shutil.rmtree(work)
    return {"push": push, "pull": pull}


def rclone_run(source: Path, work: Path, remote: Remote) -> dict[str, Sample]:
    """One ``rclone copy`` to a fresh folder of the server and back."""
    there = remote.folder(f"rclone-{uuid.uuid4().hex[:12]}")
    # made untimed first: pyftpdlib answers 501 to listing a missing folder, which rclone 1.60
    # takes for an error rather than an empty destination
    remote.run("mkdir", there)
    # the tree escale synced, without the .escale folder escale keeps in it
    copy = [*RCLONE, *remote.args, "copy", "--exclude", f"/{ESCALE_FOLDER}/**"]
    push = synced([*copy, source, there], remote.env)
    pull = synced([*copy, there, work / "C"], remote.env)
    same_tree(source, work / "C", f"rclone copy through {there}", ESCALE_FOLDER)
    remote.run("purge", there)
    shutil.rmtree(work)
    return {"push": push, "pull": pull}


def median(samples: list[Sample]) -> float:
    """The median wall seconds."""
    return float(statistics.median(s.wall for s in samples))


def result(
    entry: ServerEntry, label: str, runs: list[dict[str, dict[str, Sample]]]
) -> dict[str, Any]:
    """The JSON record of one server and workload: every run, and the medians."""
    record: dict[str, Any] = {"server": entry.key, "label": entry.label, "workload": label}
    for tool in ("escale", "rclone"):
        done = [run[tool] for run in runs if tool in run]
        record[tool] = {step: summary([d[step] for d in done]) for step in ("push", "pull")}
        if not done:
            record[tool] = None
    return record


def summary(samples: list[Sample]) -> dict[str, Any]:
    """Median wall and CPU seconds, every run's wall seconds, the largest peak RSS."""
    if not samples:
        return {}
    return {
        "median_s": round(median(samples), 4),
        "runs_s": [round(s.wall, 4) for s in samples],
        "cpu_median_s": round(statistics.median(s.cpu for s in samples), 4),
        "peak_rss_mib": round(max(s.rss_kib for s in samples) / 1024, 1),
    }


def ratio(escale: float, rclone: float) -> str:
    """escale's time ÷ rclone's, two significant digits below 1 (0.015: 65 times faster)."""
    value = escale / rclone if rclone else float("inf")
    return f"{value:.1f}" if value >= 1 else f"{value:.2g}"


def row(record: Mapping[str, Any]) -> str:
    """The markdown row of a record."""
    escale, rclone = record["escale"], record["rclone"]
    cells = [record["label"], record["workload"]]
    cells += [f"{escale[s]['median_s']:.2f}" for s in ("push", "pull")]
    if rclone:
        cells += [f"{rclone[s]['median_s']:.2f}" for s in ("push", "pull")]
        cells += [ratio(escale[s]["median_s"], rclone[s]["median_s"]) for s in ("push", "pull")]
    else:
        cells += ["-"] * 4
    cells.append(f"{max(escale[s]['peak_rss_mib'] for s in ('push', 'pull')):.0f}")
    return "| " + " | ".join(cells) + " |"


TABLE_HEAD = [
    "| server | workload | escale push s | escale pull s | rclone copy push s "
    "| rclone copy pull s | push ÷ rclone | pull ÷ rclone | escale peak RSS MiB |",
    "|---|---|---|---|---|---|---|---|---|",
]


def bench_server(
    entry: ServerEntry, base: Path, args: argparse.Namespace
) -> Iterator[dict[str, Any]]:
    """Start ``entry``'s server; yield a record per workload; stop it."""
    server = entry.start(base / "server")
    try:
        remote = remote_of(server)
        for workload in ("small", "big"):
            source = base / workload / "A"
            label = write_tree(source, workload, args.files, args.big_mib)
            runs = []
            for i in range(args.runs):
                runs.append(
                    {"escale": escale_run(server, source, base / workload / f"e{i}", remote)}
                )
                if not args.no_rclone:
                    runs[-1]["rclone"] = rclone_run(source, base / workload / f"r{i}", remote)
            shutil.rmtree(source.parent)
            yield result(entry, label, runs)
    finally:
        entry.stop_server(server)


def header(args: argparse.Namespace, argv: list[str]) -> list[str]:
    """Title, machine and software lines."""
    rclone = run_untimed([*RCLONE, "version"]).splitlines()[0] if shutil.which(RCLONE[0]) else "-"
    return [
        "# escale through network servers, beside rclone copy",
        "",
        f"- machine: nproc {os.cpu_count()}, kernel {platform.release()}, "
        f"Python {platform.python_version()}, {rclone}",
        f"- command: `python benchmarks/relays.py {' '.join(argv)}`",
        f"- medians of {args.runs} run(s); servers on 127.0.0.1; `sync` before each timed step",
        "",
    ]


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    keys = ",".join(entry.key for entry in SERVERS)
    parser.add_argument("--servers", default=keys, help=f"comma-separated, of {keys}")
    parser.add_argument("--runs", "-n", type=int, default=3, help="runs per step (median)")
    parser.add_argument("--files", type=int, default=1000, help="small files (4 KiB each)")
    parser.add_argument("--big-mib", type=int, default=200, help="size of the big file")
    parser.add_argument("--no-rclone", action="store_true", help="escale only")
    parser.add_argument("--output", type=Path, help="also write the markdown here")
    parser.add_argument("--json", type=Path, help="write every run as JSON here")
    args = parser.parse_args(argv)
    unknown = set(args.servers.split(",")) - {entry.key for entry in SERVERS}
    if unknown:
        parser.error(f"unknown server(s) {', '.join(sorted(unknown))}; known: {keys}")
    if args.runs < 1 or args.files < 1 or args.big_mib < 1:
        parser.error("--runs, --files and --big-mib must be at least 1")
    if not args.no_rclone and shutil.which(RCLONE[0]) is None:
        parser.error("rclone is not installed (apt-get install rclone), or give --no-rclone")
    return args


def main(argv: Optional[list[str]] = None) -> int:
    """Run the benchmark; print the markdown as rows come; 1 if a server failed."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    lines, records, notes, failed = [*header(args, argv), *TABLE_HEAD], [], [], False
    print("\n".join(lines), flush=True)
    wanted = args.servers.split(",")
    for entry in (e for e in SERVERS if e.key in wanted):
        missing = entry.start_function()
        if isinstance(missing, str):  # a server another branch adds: one line, not an error
            notes.append(f"- {entry.label}: not available: {missing}")
            continue
        with tempfile.TemporaryDirectory(prefix=f"escale-bench-{entry.key}-") as folder:
            try:
                for record in bench_server(entry, Path(folder), args):
                    records.append(record)
                    lines.append(row(record))
                    print(lines[-1], flush=True)
            except pytest.skip.Exception as exc:
                notes.append(f"- {entry.label}: not run: {exc.msg}")
            except BenchmarkError as exc:
                notes.append(f"- {entry.label}: not run: {str(exc).splitlines()[0]}")
                failed = True
    tail = ["", *notes] if notes else []
    print("\n".join(tail), flush=True)
    if args.output:
        args.output.write_text("\n".join(lines + tail) + "\n", encoding="utf-8")
    if args.json:
        data = {"runs": args.runs, "files": args.files, "big_mib": args.big_mib}
        data.update(results=records, notes=notes)
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
