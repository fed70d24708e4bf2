"""Built-in relay ``ftp://`` and ``ftps://`` (explicit TLS), through fsspec's FTP client."""

from __future__ import annotations

from escale_core import hookimpl
from escale_core.hookspecs import RegisterRelay


@hookimpl
def register_relays(register: RegisterRelay) -> None:
    """Register ``ftp`` and ``ftps``."""
    for scheme in ("ftp", "ftps"):
        register(
            scheme,
            "escale_relay_ftp.relay:FtpRelay",
            needs_host=True,
            verified=("vsftpd 3.0", "ProFTPD 1.3.8", "pyftpdlib 2"),
            description="FTP" + (" with TLS" if scheme == "ftps" else "") + " (ftplib)",
        )
