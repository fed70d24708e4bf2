"""escale push and pull through each network relay, against the test servers on 127.0.0.1.

Usage::

    python benchmarks/relays.py [--backends webdav,sftp,ftp,s3] [--files 1000] [--big-mib 200]

For each backend: 1,000 files of 4 KiB, then one 200 MiB file, pushed by client A and pulled
by client B (aes-256-gcm), each in a fresh repository. Prints wall seconds and the peak RSS
(VmHWM, read while the process runs) of the pushing and the pulling escale process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import RelayServer  # noqa: E402


def start(backend: str, base: Path) -> RelayServer:
    """Start the backend's test server (see tests/servers)."""
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
    push = run([*escale, "-c", str(config(server, work, "A", relay)), "sync", "s"])
    pull = run([*escale, "-c", str(config(server, work, "B", relay)), "sync", "s"])
    if subprocess.run(["diff", "-rq", str(work / "A"), str(work / "B")]).returncode:
        raise SystemExit("A and B differ")
    label = f"{files} x 4 KiB" if make == "small" else f"1 x {big_mib} MiB"
    return (
        f"| {server.name} | {label} | {push[0]:.2f} | {push[1] / 2**20:.0f} | "
        f"{pull[0]:.2f} | {pull[1] / 2**20:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="webdav,sftp,ftp,s3")
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--big-mib", type=int, default=200)
    args = parser.parse_args()
    print("| relay | workload | push s | push peak MiB | pull s | pull peak MiB |")
    print("|---|---|---|---|---|---|")
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
