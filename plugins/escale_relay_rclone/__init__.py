"""Built-in relay ``rclone://REMOTE/path``: any remote of the user's rclone configuration
(Google Drive, OneDrive, Dropbox... about 70 backends), through one ``rclone rcd`` per relay."""

from __future__ import annotations

from escale_core import hookimpl
from escale_core.hookspecs import RegisterRelay


@hookimpl
def register_relays(register: RegisterRelay) -> None:
    """Register ``rclone``."""
    register(
        "rclone",
        "escale_relay_rclone.relay:RcloneRelay",
        install_hint="apt install rclone (or https://rclone.org/install/)",
        description="any rclone remote (Google Drive, OneDrive, Dropbox...) through rclone rcd",
        verified=(
            "rclone 1.60: local and alias remotes",
            "rclone serve webdav and sftp",
            "pyftpdlib through rclone's ftp backend",
        ),
    )
