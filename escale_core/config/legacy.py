"""The original Escale's way of naming a relay in pieces (``protocol``, ``address``, ``port``,
``directory``, ``user``), as one relay URL: read by the loader (legacy keys in TOML) and by
``escale config import``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Optional
from urllib.parse import quote

from ..address import parse_address

#: The original's protocol names that are another scheme in escale.
LEGACY_SCHEMES = {
    "local": "file",
    "googledrive": "gdrive",
    "google": "gdrive",
    "http": "webdav",
    "https": "webdavs",
}
#: Protocols whose address may be ``proto:///mount//relative`` (the original's multi-path ones).
MULTIPATH = ("googledrive", "google", "gdrive", "dropbox", "box", "file", "local", "rclone")


def legacy_relay_url(parts: Mapping[str, str], username: Optional[str] = None) -> str:
    """One relay URL from the original's protocol, address, port and directory options,
    read as the original did (``parse_section``): an absolute directory without an address is
    the address; an address may be a whole URL whose path joins the directory; an address
    that is an absolute path with a directory is the multi-path form ``proto:///mount//dir``.

    :raises ValueError: no address, no protocol, or a port that is not a number.
    """
    address, directory = parts.get("address", "").strip(), parts.get("directory", "").strip()
    if not address and os.path.isabs(os.path.expanduser(directory)):
        address, directory = directory, ""
    if not address:
        raise ValueError("no relay address (address, directory or relay path)")
    found, host, port, path = parse_address(address, MULTIPATH)
    protocol = (parts.get("protocol", "").strip() or found or "").lower()
    port = parts.get("port", "").strip() or port
    directory = "/".join(p.strip("/") for p in (directory, path or "") if p and p.strip("/"))
    local = host is not None and os.path.isabs(os.path.expanduser(host))
    if not protocol:
        if not local:
            raise ValueError(f"cannot tell the protocol of {address!r}: set protocol")
        protocol = "file"
    scheme = LEGACY_SCHEMES.get(protocol, protocol)
    if port and not port.isdigit():
        raise ValueError(f"port {port!r} is not a number")
    if local:
        assert host is not None
        if scheme == "file":
            folder = os.path.join(host, directory) if directory else host
            return folder if folder.startswith("~") else "file://" + folder
        return f"{scheme}://{host}//{directory}" if directory else f"{scheme}://{host}"
    if host is None:  # proto://relative of a multi-path protocol
        return f"{scheme}://{directory}"
    if username and "@" not in host:
        host = f"{quote(username.strip(), safe='')}@{host}"
    return f"{scheme}://{host}{':' + port if port else ''}/{directory}"
