"""Apache httpd with mod_dav + mod_dav_fs and basic authentication (what most WebDAV hosts run)
as a separate process: fixtures ``apache_server`` (one per session), ``apache_server_own``
(private, for tests that kill and restart it) and ``apaches_server`` (HTTPS, mod_ssl).

The fixture writes its own minimal configuration (no Debian ``envvars``, no
``/etc/apache2``). Run as root, Apache's workers drop to the user ``escale-test``: the
served folder and the lock database live in a folder that user owns, outside the test's
private temporary folder (which only root may enter).
"""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest

from . import RelayServer, ServerProcess, on_free_port, self_signed_certificate

APACHE = Path("/usr/sbin/apache2")
MODULES = Path("/usr/lib/apache2/modules")
RUN_AS = "escale-test"
USER, PASSWORD = "relay", "apache-secret-123"
#: Repositories live under this folder of the server (url_prefix ends with it).
BASE = "repos"
_MODULES = [
    "mpm_event",  # mod_unixd (User, Group) is compiled in
    "authn_core",
    "authn_file",
    "authz_core",
    "authz_user",
    "auth_basic",
    "mime",
    "dav",
    "dav_fs",
]


def apache_missing() -> Optional[str]:
    """Why Apache cannot run here, or None."""
    if not APACHE.exists():
        return f"{APACHE} is not installed (.ci/servers.sh installs apache2)"
    for module in [*_MODULES, "ssl"]:
        if not (MODULES / f"mod_{module}.so").exists():
            return f"{MODULES}/mod_{module}.so is missing (.ci/servers.sh installs apache2)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            return f"the user {RUN_AS} is missing (.ci/servers.sh creates it)"
    return None


def htpasswd_line(user: str, password: str) -> str:
    """An ``AuthUserFile`` entry (``{SHA}`` scheme, which Apache reads on every platform)."""
    digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
    return f"{user}:{{SHA}}{digest}\n"


def apache_config(
    port: int, base: Path, data: Path, *, tls: Optional[tuple[Path, Path]] = None
) -> str:
    """A complete httpd.conf serving ``data/root`` with WebDAV to USER (basic auth)."""
    modules = [*_MODULES, "ssl", "socache_shmcb"] if tls else _MODULES
    lines = [f"ServerRoot {base}", "ServerName 127.0.0.1", f"Listen 127.0.0.1:{port}"]
    lines += [f"LoadModule {m}_module {MODULES}/mod_{m}.so" for m in modules]
    if os.geteuid() == 0:  # as root, workers drop to the test user; otherwise they stay us
        lines += [f"User {RUN_AS}", f"Group {RUN_AS}"]
    lines += [
        f"PidFile {base}/httpd.pid",
        f"ErrorLog {base}/error.log",
        "LogLevel warn",
        f"DefaultRuntimeDir {data}/run",
        f"DavLockDB {data}/locks/DavLock",
        "TypesConfig /dev/null",
        "KeepAliveTimeout 30",
        "Timeout 30",
        f'DocumentRoot "{data}/root"',
        f'<Directory "{data}/root">',
        "  Dav On",
        "  AuthType Basic",
        '  AuthName "escale relay"',
        f"  AuthUserFile {data}/htpasswd",  # read by the workers
        "  Require valid-user",
        "</Directory>",
    ]
    if tls:
        lines += [
            "SSLEngine on",
            f"SSLCertificateFile {tls[0]}",
            f"SSLCertificateKeyFile {tls[1]}",
            f"SSLSessionCache shmcb:{data}/run/ssl_scache(512000)",
        ]
    return "\n".join(lines) + "\n"


def served_folder() -> Path:
    """A folder that Apache's workers (``escale-test`` when run as root) may write."""
    data = Path(tempfile.mkdtemp(prefix="escale-apache-"))
    for sub in ("root", f"root/{BASE}", "locks", "run"):
        (data / sub).mkdir()
    if os.geteuid() == 0:
        user = pwd.getpwnam(RUN_AS)
        for path in [data, *data.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
    data.chmod(0o755)
    return data


def start_apache(base: Path, *, tls: Optional[tuple[Path, Path]] = None) -> RelayServer:
    """Start Apache serving a new folder to USER/PASSWORD on a free port (``base``: its
    configuration, password file and logs). ``server.files`` is the repositories' folder;
    the caller removes ``server.files.parent.parent`` when done (see :func:`stop_apache`)."""
    reason = apache_missing()
    if reason:
        pytest.skip(reason)
    data = served_folder()
    (data / "htpasswd").write_text(htpasswd_line(USER, PASSWORD), encoding="utf-8")
    config = base / "httpd.conf"

    def start(port: int) -> ServerProcess:
        config.write_text(apache_config(port, base, data, tls=tls), encoding="utf-8")
        command = [str(APACHE), "-f", str(config), "-DFOREGROUND"]
        return ServerProcess(command, port, base / "apache.log").start()

    try:
        server = on_free_port(start)
    except RuntimeError:
        shutil.rmtree(data, ignore_errors=True)
        raise
    port = server.port
    scheme = "webdavs" if tls else "webdav"
    return RelayServer(
        scheme,
        server,
        f"{scheme}://{USER}@127.0.0.1:{port}/{BASE}",
        config=f'password = "{PASSWORD}"',
        relay_options={"verify": str(tls[0])} if tls else {},
        files=data / "root" / BASE,
    )


def stop_apache(server: RelayServer) -> None:
    """Stop Apache (its workers too) and remove the folder it served."""
    server.server.stop()
    if server.files is not None:
        shutil.rmtree(server.files.parent.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def apache_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    """One Apache WebDAV server for the session; ``server.url(folder)`` is a repository."""
    server = start_apache(tmp_path_factory.mktemp("apache"))
    yield server
    stop_apache(server)


@pytest.fixture
def apache_server_own(tmp_path: Path) -> Iterator[RelayServer]:
    """A private Apache server that a test may kill and restart (same port, same folder)."""
    base = tmp_path / "apache-server"
    base.mkdir()
    server = start_apache(base)
    yield server
    stop_apache(server)


@pytest.fixture(scope="session")
def apaches_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    """Apache over HTTPS (mod_ssl) with a self-signed certificate for 127.0.0.1;
    ``relay_options`` holds ``verify`` = the certificate."""
    base = tmp_path_factory.mktemp("apaches")
    server = start_apache(base, tls=self_signed_certificate(base))
    yield server
    stop_apache(server)
