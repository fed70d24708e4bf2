"""Built-in relay ``webdav://`` (HTTP) and ``webdavs://`` (HTTPS), through webdav4."""

from __future__ import annotations

from escale_core import hookimpl
from escale_core.hookspecs import RegisterRelay


@hookimpl
def register_relays(register: RegisterRelay) -> None:
    """Register ``webdav`` and ``webdavs``."""
    for scheme in ("webdav", "webdavs"):
        register(
            scheme,
            "escale_relay_webdav.relay:WebdavRelay",
            requires=("webdav4",),
            install_hint="pip install 'escale[webdav]'",
            needs_host=True,
            verified=("WsgiDAV 4", "Apache httpd 2.4 mod_dav_fs"),
            description="WebDAV through webdav4" + (" over HTTPS" if scheme.endswith("s") else ""),
        )
