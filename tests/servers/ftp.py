"""A pyftpdlib server as a separate process.

Fixtures: ``ftp_server`` (one per session), ``ftp_server_own`` (a private one that a fault test
may kill and restart on the same port and folder) and ``ftps_server`` (explicit TLS with a
self-signed certificate; needs pyOpenSSL in the server's Python, else skipped).

Repositories live under ``/repos`` of the server: ``server.url(folder)`` is a fresh one.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from . import RelayServer, ServerProcess, free_port, on_free_port, self_signed_certificate

USER, PASSWORD = "relay", "ftp-secret-123"


def start_ftp(root: Path, base: Path, *, tls: bool = False) -> RelayServer:
    """Start pyftpdlib serving ``root`` to USER/PASSWORD with write access.

    Credentials go in a ``password_file`` holding ``user:password`` (the original Escale's
    form); with ``tls``, the server requires TLS on both connections and the client trusts its
    self-signed certificate through relay option ``ca_file``.
    """
    if importlib.util.find_spec("pyftpdlib") is None:
        pytest.skip("pyftpdlib is not installed (pip install -e '.[test]')")
    command = [sys.executable, "-m", "pyftpdlib", "-i", "127.0.0.1", "-u", USER, "-P", PASSWORD]
    command += ["-d", str(root), "-w"]
    options: dict[str, object] = {}
    if tls:
        if importlib.util.find_spec("OpenSSL") is None:
            pytest.skip("pyftpdlib's FTPS needs pyOpenSSL (pip install pyopenssl)")
        cert, key = self_signed_certificate(base)
        command += ["--tls", "--certfile", str(cert), "--keyfile", str(key)]
        command += ["--tls-control-required", "--tls-data-required"]
        options["ca_file"] = str(cert)
    (root / "repos").mkdir(exist_ok=True)
    secret = base / "ftp-password"
    secret.write_text(f"{USER}:{PASSWORD}\n", encoding="utf-8")
    server = _start("ftp", lambda port: [*command, "-p", str(port)], base)
    port = server.port
    scheme = "ftps" if tls else "ftp"
    return RelayServer(
        scheme,
        server,
        f"{scheme}://{USER}@127.0.0.1:{port}/repos",
        config=f'password_file = "{secret}"',
        relay_options=options,
        files=root / "repos",
    )


@pytest.fixture(scope="session")
def ftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    """One FTP server for the session."""
    base = tmp_path_factory.mktemp("ftp")
    (base / "root").mkdir()
    server = start_ftp(base / "root", base)
    yield server
    server.server.stop()


@pytest.fixture(scope="session")
def ftps_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    """One FTP server requiring explicit TLS, for the session."""
    base = tmp_path_factory.mktemp("ftps")
    (base / "root").mkdir()
    server = start_ftp(base / "root", base, tls=True)
    yield server
    server.server.stop()


@pytest.fixture
def ftp_server_own(tmp_path: Path) -> Iterator[RelayServer]:
    """A private FTP server that a test may kill and restart (same port, same folder).

    Its files are in ``tmp_path / "ftp-root"``, its log in ``tmp_path / "ftp.log"``.
    """
    (tmp_path / "ftp-root").mkdir()
    server = start_ftp(tmp_path / "ftp-root", tmp_path)
    yield server
    server.server.stop()


# -- vsftpd and ProFTPD, the servers users run (installed by .ci/servers.sh) -------------------

VSFTPD = Path("/usr/sbin/vsftpd")
PROFTPD = Path("/opt/escale-test/proftpd/usr/sbin/proftpd")
SERVICE_USER = "escale-test"


def _served_root(root: Path) -> Path:
    """``root`` owned by root (vsftpd refuses a writable chroot), ``root/repos`` by the user."""
    import pwd

    try:
        user = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        pytest.skip(f"user {SERVICE_USER} is missing (run .ci/servers.sh)")
    if os.geteuid() != 0:
        pytest.skip("vsftpd and ProFTPD tests run the server as root, which drops privileges")
    repos = root / "repos"
    repos.mkdir(exist_ok=True)
    os.chown(repos, user.pw_uid, user.pw_gid)
    for folder in (root, *root.parents):  # the server's user must reach the folder
        if folder == Path("/"):
            break
        folder.chmod(folder.stat().st_mode | 0o005)
    return repos


def _start(name: str, command: Callable[[int], list[str]], base: Path) -> ServerProcess:
    return on_free_port(
        lambda port: ServerProcess(command(port), port, base / f"{name}.log").start()
    )


def start_vsftpd(root: Path, base: Path, *, tls: bool = False) -> RelayServer:
    """vsftpd serving ``root/repos``, in the foreground with its own configuration file.

    vsftpd checks passwords through PAM only: to change no system account, the login is
    vsftpd's anonymous one with write rights, mapped to the user ``escale-test``
    (``ftp_username``); any password is accepted. Its defaults are kept where users keep them:
    no ``MLSD``, dot files hidden from a plain ``LIST``.
    """
    if not VSFTPD.exists():
        pytest.skip(f"{VSFTPD} is not installed (run .ci/servers.sh)")
    files = _served_root(root)
    root.chmod(0o755)
    (base / "vsftpd-empty").mkdir(exist_ok=True)
    options: dict[str, object] = {}
    extra = ""
    if tls:
        cert, key = self_signed_certificate(base)
        extra = (
            f"ssl_enable=YES\nrsa_cert_file={cert}\nrsa_private_key_file={key}\n"
            "force_anon_logins_ssl=YES\nforce_anon_data_ssl=YES\nallow_anon_ssl=YES\n"
            "require_ssl_reuse=NO\nssl_ciphers=HIGH\n"
        )
        options["ca_file"] = str(cert)
    pasv = free_port()

    def command(port: int) -> list[str]:
        conf = base / "vsftpd.conf"
        conf.write_text(
            f"listen=YES\nlisten_address=127.0.0.1\nlisten_port={port}\nbackground=NO\n"
            f"anonymous_enable=YES\nno_anon_password=YES\nanon_root={root}\n"
            f"ftp_username={SERVICE_USER}\nwrite_enable=YES\nanon_upload_enable=YES\n"
            "anon_mkdir_write_enable=YES\nanon_other_write_enable=YES\nanon_umask=022\n"
            f"local_enable=NO\npasv_enable=YES\npasv_address=127.0.0.1\n"
            f"pasv_min_port={pasv}\npasv_max_port={pasv + 50}\nseccomp_sandbox=NO\n"
            f"secure_chroot_dir={base / 'vsftpd-empty'}\nxferlog_enable=YES\n"
            f"vsftpd_log_file={base / 'vsftpd-transfers.log'}\n{extra}",
            encoding="utf-8",
        )
        return [str(VSFTPD), str(conf)]

    server = _start("vsftpd", command, base)
    scheme = "ftps" if tls else "ftp"
    return RelayServer(
        scheme,
        server,
        f"{scheme}://anonymous@127.0.0.1:{server.port}/repos",
        relay_options=options,
        files=files,
    )


def start_proftpd(
    root: Path, base: Path, *, tls: bool = False, chroot: bool = True, without: tuple[str, ...] = ()
) -> RelayServer:
    """ProFTPD (unpacked from its .deb) serving ``root/repos`` to USER/PASSWORD.

    The login is checked against its own ``AuthUserFile`` (no PAM, no system password) and
    mapped to the uid of ``escale-test``; scoreboard, pid and delay files are in ``base``.
    With ``chroot`` (``DefaultRoot``), ``/`` is ``root``; without, ``/`` is the machine's root
    and ``root`` the login folder, as for a local account on a default ProFTPD. ``without``
    lists configuration lines to leave out (``AllowOverwrite on``, say).
    """
    if not PROFTPD.exists():
        pytest.skip(f"{PROFTPD} is not installed (run .ci/servers.sh)")
    files = _served_root(root)
    _proftpd_users(root, base)
    options: dict[str, object] = {}
    lines = _proftpd_tls(base, options) if tls else []
    pasv = free_port()
    lines += [
        "ServerType standalone",
        "DefaultAddress 127.0.0.1",
        f"User {SERVICE_USER}",
        f"Group {SERVICE_USER}",
        "UseIPv6 off",
        "RequireValidShell off",
        *([f"DefaultRoot {root}"] if chroot else []),
        "AuthOrder mod_auth_file.c",
        f"AuthUserFile {base / 'proftpd.passwd'}",
        f"AuthGroupFile {base / 'proftpd.group'}",
        "AllowOverwrite on",  # off by default: no file could be replaced
        "Umask 022",
        f"PassivePorts {pasv} {pasv + 50}",
        f"ScoreboardFile {base / 'proftpd.scoreboard'}",
        f"PidFile {base / 'proftpd.pid'}",
        f"DelayTable {base / 'proftpd.delay'}",
        "WtmpLog off",
        "UseReverseDNS off",
        "MaxInstances 30",
        f"SystemLog {base / 'proftpd-system.log'}",
    ]
    conf = base / "proftpd.conf"

    def command(port: int) -> list[str]:
        kept = [line for line in lines if line not in without]
        conf.write_text("\n".join([f"Port {port}", *kept, ""]), encoding="utf-8")
        return [str(PROFTPD), "-n", "-c", str(conf)]

    server = _start("proftpd", command, base)
    scheme = "ftps" if tls else "ftp"
    secret = base / "ftp-password"
    secret.write_text(f"{USER}:{PASSWORD}\n", encoding="utf-8")
    return RelayServer(
        scheme,
        server,
        f"{scheme}://{USER}@127.0.0.1:{server.port}/{'' if chroot else '~/'}repos",
        config=f'password_file = "{secret}"',
        relay_options=options,
        files=files,
    )


def _proftpd_users(root: Path, base: Path) -> None:
    """ProFTPD's own user and group files: USER/PASSWORD is ``escale-test``, home ``root``."""
    import pwd

    user = pwd.getpwnam(SERVICE_USER)
    hashed = _sha512_crypt(PASSWORD)
    (base / "proftpd.passwd").write_text(
        f"{USER}:{hashed}:{user.pw_uid}:{user.pw_gid}::{root}:/bin/sh\n", encoding="utf-8"
    )
    (base / "proftpd.group").write_text(f"{SERVICE_USER}:x:{user.pw_gid}:\n", encoding="utf-8")
    for name in ("proftpd.passwd", "proftpd.group"):
        (base / name).chmod(0o600)  # the password hash stays private


def _proftpd_tls(base: Path, options: dict[str, object]) -> list[str]:
    """mod_tls's lines (explicit TLS required); the client trusts the certificate."""
    modules = PROFTPD.parent.parent / "lib" / "proftpd"
    if not (modules / "mod_tls.so").exists():
        pytest.skip(f"{modules}/mod_tls.so is missing (proftpd-mod-crypto: .ci/servers.sh)")
    cert, key = self_signed_certificate(base)
    options["ca_file"] = str(cert)
    return [
        f"ModulePath {modules}",
        "LoadModule mod_tls.c",
        "TLSEngine on",
        "TLSRequired on",
        f"TLSRSACertificateFile {cert}",
        f"TLSRSACertificateKeyFile {key}",
        "TLSOptions NoSessionReuseRequired",  # ftplib cannot reuse TLS sessions
        "TLSProtocol TLSv1.2 TLSv1.3",
        f"TLSLog {base / 'proftpd-tls.log'}",
    ]


def _sha512_crypt(password: str) -> str:
    """A ``$6$`` crypt(3) hash, as ProFTPD's ``AuthUserFile`` holds (made by openssl)."""
    import subprocess

    return subprocess.run(
        ["openssl", "passwd", "-6", password], check=True, capture_output=True, text=True
    ).stdout.strip()


def _fixture(start: Callable[..., RelayServer], name: str, tls: bool = False) -> Any:
    @pytest.fixture(scope="session")
    def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
        base = tmp_path_factory.mktemp(name)
        (base / "root").mkdir()
        server = start(base / "root", base, tls=tls)
        yield server
        server.server.stop()

    shared.__doc__ = f"One {name} server for the session."
    return shared


def _own_fixture(start: Callable[..., RelayServer], name: str) -> Any:
    @pytest.fixture
    def own(tmp_path: Path) -> Iterator[RelayServer]:
        (tmp_path / f"{name}-root").mkdir()
        server = start(tmp_path / f"{name}-root", tmp_path)
        yield server
        server.server.stop()

    own.__doc__ = f"A private {name} server that a test may kill and restart."
    return own


vsftpd_server = _fixture(start_vsftpd, "vsftpd")
vsftpds_server = _fixture(start_vsftpd, "vsftpds", tls=True)
vsftpd_server_own = _own_fixture(start_vsftpd, "vsftpd")
proftpd_server = _fixture(start_proftpd, "proftpd")
proftpds_server = _fixture(start_proftpd, "proftpds", tls=True)
proftpd_server_own = _own_fixture(start_proftpd, "proftpd")
