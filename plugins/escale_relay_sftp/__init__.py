"""Built-in relay ``sftp://`` (and ``ssh://``), through sshfs (asyncssh)."""

from __future__ import annotations

from escale_core import hookimpl
from escale_core.hookspecs import RegisterRelay


@hookimpl
def register_relays(register: RegisterRelay) -> None:
    """Register ``sftp`` and ``ssh``."""
    for scheme in ("sftp", "ssh"):
        register(
            scheme,
            "escale_relay_sftp.relay:SftpRelay",
            requires=("sshfs",),
            install_hint="pip install 'escale[sftp]'",
            needs_host=True,
            verified=("OpenSSH sshd 9", "asyncssh server"),
            description="SFTP through sshfs (asyncssh)",
        )
