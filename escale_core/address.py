"""Relay addresses: ``scheme://[user[:password]@]host[:port]/path`` and multi-path addresses.

A multi-path address ``scheme:///mount//relative`` means "the folder ``relative`` inside the
locally mounted storage ``/mount``" (a Google Drive or Dropbox mount, say). A bare absolute path
(``/srv/relay``, ``~/relay``) is a ``file`` relay.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional
from urllib.parse import unquote, urlsplit

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.DOTALL)
#: ``scheme://user:password@`` anywhere in a text (the last ``@`` before the path ends it)
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/:@\s'\"]*):[^/\s'\"]*@")


def mask_passwords(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@...`` in it masked as
    :meth:`RelayAddress.display` masks it (for an address that cannot even be parsed)."""
    return _USERINFO.sub(r"\g<head>:***@", text)


@dataclass(frozen=True)
class RelayAddress:
    """A parsed relay address.

    :param scheme: lower-case URL scheme (``file``, ``sftp``, ``s3``...).
    :param host: host name, bucket or ``None``.
    :param port: port number or ``None``.
    :param username: user from the URL, if any.
    :param password: password from the URL, if any (prefer ``password_file``).
    :param path: the folder of the repository on the relay; for multi-path addresses, the
        folder inside ``mount``.
    :param mount: for multi-path addresses, the local mount point of the storage.
    """

    scheme: str
    host: Optional[str] = None
    port: Optional[int] = None
    username: Optional[str] = None
    password: Optional[str] = None
    path: str = ""
    mount: Optional[str] = None

    def display(self) -> str:
        """The address as a URL, with the password masked."""
        auth = ""
        if self.username:
            auth = self.username + (":***" if self.password else "") + "@"
        host = self.host or ""
        if host and ":" in host:
            host = f"[{host}]"
        port = f":{self.port}" if self.port else ""
        if self.mount is not None:
            return f"{self.scheme}://{self.mount}//{self.path}"
        path = self.path if self.path.startswith("/") or not self.path else "/" + self.path
        return f"{self.scheme}://{auth}{host}{port}{path}"


def parse_relay_url(url: str, multipath_schemes: frozenset[str] = frozenset()) -> RelayAddress:
    """Parse a relay address.

    :param url: the address as written in the configuration.
    :param multipath_schemes: schemes that accept ``scheme:///mount//relative``.
    :raises ValueError: the address cannot be parsed; the message says what is expected.
    """
    url = url.strip()
    if not url:
        raise ValueError("empty relay address")
    if "\x00" in url:
        raise ValueError("relay address contains a NUL character")
    match = _SCHEME.match(url)
    if match is None:
        if url.startswith(("/", "~")):
            return RelayAddress("file", path=os.path.expanduser(url))
        raise ValueError(
            f"'{url}' is not a relay address: expected scheme://[user@]host[:port]/path "
            "or an absolute folder path"
        )
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme == "file" or (scheme in multipath_schemes and rest.startswith(("/", "~"))):
        return _parse_local(scheme, rest, scheme in multipath_schemes)
    if scheme in multipath_schemes and not rest.startswith("/"):
        # scheme://relative: a folder relative to the storage's default location
        return RelayAddress(scheme, path=unquote(rest))
    try:
        parts = urlsplit(f"{scheme}://{rest}")
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"'{url}' has an invalid host or port: {exc}") from None
    path = unquote(parts.path)
    if parts.query or parts.fragment:
        raise ValueError(f"'{url}' has a query or fragment; pass options in relay_options")
    return RelayAddress(
        scheme,
        host=parts.hostname or None,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        path=path,
    )


def _parse_local(scheme: str, rest: str, multipath: bool) -> RelayAddress:
    if rest.startswith("~"):
        rest = os.path.expanduser(rest)
    elif rest.startswith("/~"):
        rest = os.path.expanduser(rest[1:])
    elif not rest.startswith("/"):
        raise ValueError(
            f"'{scheme}://{rest}' is not an absolute path: write {scheme}:///absolute/path"
        )
    rest = unquote(rest)
    if multipath and "//" in rest.lstrip("/"):
        mount, _, relative = rest.lstrip("/").partition("//")
        mount = "/" + mount if rest.startswith("/") else mount
        return RelayAddress(scheme, path=relative.strip("/"), mount=mount.rstrip("/") or "/")
    return RelayAddress(scheme, path=rest)


def parse_address(
    addr: str, multi_path_protocols: list[str] | tuple[str, ...] = ()
) -> tuple[Optional[str], Optional[str], Optional[str], Optional[str]]:
    """Parse an address the way the original Escale did (API compatibility).

    ``proto://[user@]host[:port][/relative]`` gives ``(proto, "[user@]host", port, relative)``:
    the user stays in the address, as in the original. A bare ``host[:port][/relative]`` has no
    protocol. An absolute path (or ``~/...``) is returned as the address.

    :param addr: host address or path.
    :param multi_path_protocols: schemes that accept ``proto:///mount//relative``.
    :returns: ``(protocol, address, port, path)``; ``None`` for what ``addr`` does not say.
    """
    schemes = {p.lower() for p in multi_path_protocols}
    protocol, sep, rest = addr.partition("://")
    if not sep:
        rest = os.path.expanduser(addr)
        if os.path.isabs(rest):
            return None, rest, None, None
        if addr.lower() in schemes:
            return addr.lower(), None, None, None
        found: Optional[str] = None
    else:
        found = protocol.lower()
        rest = os.path.expanduser(rest[1:]) if rest.startswith("/~") else os.path.expanduser(rest)
        if found in schemes:
            if not os.path.isabs(rest):
                return found, None, None, rest or None
            mount, _, relative = rest.partition("//")
            return found, mount, None, relative.strip("/") or None
        if os.path.isabs(rest):
            return found, rest, None, None
    netloc, _, path = rest.partition("/")
    user, at, hostport = netloc.rpartition("@")
    host, _, port = hostport.partition(":")
    return found, f"{user}{at}{host}" or None, port or None, path or None
