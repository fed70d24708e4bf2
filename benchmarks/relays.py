"""escale push and pull through each network relay, against the test servers on 127.0.0.1.

Usage::

    python benchmarks/relays.py [--backends webdav,sftp,ftp,s3,...] [--files 1000] [--big-mib 200]

For each backend: 1,000 files of 4 KiB, then one 200 MiB file, pushed by client A and pulled
by client B (aes-256-gcm), each in a fresh repository; beside it, plain ``rclone copy`` of the
same files to and from the same server (an rclone remote defined by environment variables, no
encryption). ``sync`` runs before every timed step (untimed), so that no step pays for the
writeback of the one before. Prints wall seconds and the peak RSS (VmHWM, read while the process
runs) of the pushing and the pulling escale process, and rclone's seconds with the ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import RelayServer  # noqa: E402

#: backend → (module of tests/servers, start function, whether it takes a served folder)
SERVERS = {
    "ftp": ("ftp", "start_ftp", True),
    "vsftpd": ("ftp", "start_vsftpd", True),
    "proftpd": ("ftp", "start_proftpd", True),
    "webdav": ("webdav", "start_webdav", True),
    "apache": ("apache", "start_apache", True),
    "sftp": ("sftp", "start_sftp", False),
}


def start(backend: str, base: Path) -> RelayServer:
    """Start the backend's test server (see tests/servers)."""
    if backend in SERVERS:
        import importlib
        import inspect

        module, name, served = SERVERS[backend]
        function = getattr(importlib.import_module(f"tests.servers.{module}"), name)
        if not served:
            return function(base)  # type: ignore[no-any-return]
        (base / "root").mkdir()
        parameters = list(inspect.signature(function).parameters)
        args = (
            (base / "root", base)
            if len(parameters) > 1 and parameters[1] == "base"
            else (base / "root",)
        )
        return function(*args)  # type: ignore[no-any-return]
    if backend == "ftp":
        from tests.servers.ftp import start_ftp

        (base / "ftp-root").mkdir()
        return start_ftp(base / "ftp-root", base)
    if backend == "webdav":
        from tests.servers.webdav import start_webdav

        (base / "dav-root").mkdir()
        return start_webdav(base / "dav-root", base)
    if backend == "sftp":
        from tests.servers.sftp import start_sftp

        return start_sftp(base)
    if backend == "rclone":
        from tests.servers.rclone import start_rclone_relay  # type: ignore[import-not-found]

        return start_rclone_relay(base)  # type: ignore[no-any-return]
    from tests.servers.s3 import start_s3

    return start_s3(base, auth=False)


def run(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes, VmHWM) of one escale process."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    if proc.returncode:
        raise SystemExit(f"failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return time.perf_counter() - start, peak


def credentials(server: RelayServer) -> tuple[str, str]:
    """The user and password the server's section gives escale (``password`` or
    ``password_file``), for rclone to log in the same way."""
    url = urlsplit(server.url_prefix)
    user, password = url.username or "", ""
    for line in server.config.splitlines():
        key, _, value = line.partition("=")
        value = value.strip().strip('"')
        if key.strip() == "password":
            password = value
        elif key.strip() == "password_file":
            text = Path(value).read_text().splitlines()[0]
            user, password = text.split(":", 1) if ":" in text else (user, text)
    return user, password


def rclone_remote(server: RelayServer) -> tuple[dict[str, str], str]:
    """Environment defining remote ``benchnet:`` as the server, and the path of escale's
    repositories on it."""
    url = urlsplit(server.url_prefix)
    user, password = credentials(server)
    secret = ""
    if password:
        secret = subprocess.run(
            ["rclone", "obscure", password], capture_output=True, text=True, check=True
        ).stdout.strip()
    env: dict[str, str] = {"TYPE": url.scheme.rstrip("s") if url.scheme != "s3" else "s3"}
    if url.scheme.startswith("webdav"):
        http = "https" if url.scheme == "webdavs" else "http"
        env.update(URL=f"{http}://{url.hostname}:{url.port}{url.path}", VENDOR="other")
        env.update(USER=user, PASS=secret)
        path = ""
    elif url.scheme == "s3":
        env.update(PROVIDER="Other", ENDPOINT=str(server.relay_options.get("endpoint_url", "")))
        env.update(ACCESS_KEY_ID="bench", SECRET_ACCESS_KEY="bench")
        path = f"{url.hostname}{url.path}"
    else:  # ftp, sftp
        env.update(HOST=str(url.hostname), PORT=str(url.port), USER=user)
        keys = server.relay_options.get("client_keys")
        if isinstance(keys, list) and keys:
            env["KEY_FILE"] = str(keys[0])
        elif secret:
            env["PASS"] = secret
        path = url.path
    prefix = "RCLONE_CONFIG_BENCHNET_"
    # rclone 1.60 cannot load AWS_CA_BUNDLE into its HTTP client, and the server is plain HTTP
    inherited = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    return {**inherited, **{prefix + k: v for k, v in env.items()}}, path


def rclone_copy(server: RelayServer, work: Path) -> tuple[float, float]:
    """Seconds of ``rclone copy A benchnet:X`` then ``rclone copy benchnet:X C``."""
    env, path = rclone_remote(server)
    remote = f"benchnet:{path.rstrip('/')}/rclone-{uuid.uuid4().hex[:8]}"
    # made first, untimed: pyftpdlib answers 501 for a missing folder, which rclone 1.60 takes
    # for an error rather than an empty destination
    subprocess.run(["rclone", "mkdir", remote], env=env, check=True)
    os.sync()
    start = time.perf_counter()
    subprocess.run(["rclone", "copy", str(work / "A"), remote], env=env, check=True)
    push = time.perf_counter() - start
    os.sync()
    start = time.perf_counter()
    subprocess.run(["rclone", "copy", remote, str(work / "C")], env=env, check=True)
    pull = time.perf_counter() - start
    if subprocess.run(["diff", "-rq", str(work / "A"), str(work / "C")]).returncode:
        raise SystemExit("rclone: A and C differ")
    return push, pull


def config(server: RelayServer, work: Path, name: str, relay: str) -> Path:
    options = "".join(
        f"{k} = {repr(v) if not isinstance(v, list) else [str(x) for x in v]}\n".replace("'", '"')
        for k, v in server.relay_options.items()
    )
    table = f"[s.relay_options]\n{options}" if options else ""
    key = work / "key"
    key.write_text("benchmark passphrase\n")
    path = work / f"{name}.toml"
    path.write_text(
        f'state_dir = "{work / ("state-" + name)}"\n[s]\npath = "{work / name}"\n'
        f'relay = "{relay}"\nclient = "{name}"\npassphrase_file = "{key}"\n'
        f"{server.config}\n{table}"
    )
    return path


def measure(server: RelayServer, work: Path, make: str, files: int, big_mib: int) -> str:
    source = work / "A"
    source.mkdir(parents=True)
    if make == "small":
        for i in range(files):
            folder = source / f"d{i % 10}"
            folder.mkdir(exist_ok=True)
            (folder / f"f{i:05d}").write_bytes(os.urandom(4096))
    else:
        with open(source / "big.bin", "wb") as out:
            for _ in range(big_mib):
                out.write(os.urandom(1 << 20))
    relay = server.url(f"bench-{uuid.uuid4().hex[:8]}")
    escale = [sys.executable, "-m", "escale_core", "-q"]
    os.sync()
    push = run([*escale, "-c", str(config(server, work, "A", relay)), "sync", "s"])
    os.sync()
    pull = run([*escale, "-c", str(config(server, work, "B", relay)), "sync", "s"])
    if subprocess.run(["diff", "-rq", str(work / "A"), str(work / "B")]).returncode:
        raise SystemExit("A and B differ")
    label = f"{files} x 4 KiB" if make == "small" else f"1 x {big_mib} MiB"
    rclone = rclone_copy(server, work) if shutil.which("rclone") else None
    versus = (
        f"{rclone[0]:.2f} | {rclone[1]:.2f} | {push[0] / rclone[0]:.2f} | {pull[0] / rclone[1]:.2f}"
        if rclone
        else "- | - | - | -"
    )
    return (
        f"| {server.name} | {label} | {push[0]:.2f} | {push[1] / 2**20:.0f} | "
        f"{pull[0]:.2f} | {pull[1] / 2**20:.0f} | {versus} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="ftp,vsftpd,proftpd,webdav,apache,sftp,s3,rclone")
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--big-mib", type=int, default=200)
    args = parser.parse_args()
    print(
        "| relay | workload | push s | push peak MiB | pull s | pull peak MiB "
        "| rclone copy push s | rclone copy pull s | push ÷ rclone | pull ÷ rclone |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix=f"escale-bench-{backend}-") as folder:
            base = Path(folder)
            server = start(backend, base)
            try:
                for make in ("small", "big"):
                    print(measure(server, base / make, make, args.files, args.big_mib), flush=True)
            finally:
                server.server.stop()


if __name__ == "__main__":
    main()
