"""Google Drive through gdrive-fsspec (``gdrive://FOLDER/path``, ``pip install 'escale[gdrive]'``).

Not tested against Google here (no account, no network in the test machines): what is tested is
the address, the credentials options and the errors a user meets before any request. The tested
relay to Google Drive is the rclone one (``rclone://drive/path`` for a remote named ``drive``),
whose OAuth setup ``rclone config`` does; Drive itself is rclone's backend, not tested here either.

Credentials, in the section's ``relay_options``:

* ``service_account_file``: a service account's JSON key; share the Drive folder with the
  account's e-mail address. Works without a browser (daemon, server).
* ``token = "cache"``: the user credentials that gdrive-fsspec (pydata-google-auth) cached after
  one interactive authorisation (``token = "browser"``, run once on a machine with a browser).
* any other option is passed to ``GoogleDriveFileSystem`` as it is (``root_file_id``...).

``gdrive:///mount//folder`` (a Drive folder mounted or synced locally) is a plain folder and never
reaches this module's network code.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Optional

from escale_core.address import RelayAddress
from escale_core.errors import (
    ConfigError,
    RelayAuthError,
    RelayError,
    RelayNotFoundError,
    RelayUnavailableError,
)

from .relay import FsspecRelay

HOW = (
    "give relay_options.service_account_file (a service account's JSON key, the Drive folder "
    'shared with its e-mail address), or authorise once with relay_options.token = "browser" '
    'on a machine with a browser; or use an rclone remote (relay = "rclone://REMOTE/path")'
)

#: gdrive-fsspec's ways to log in that can hold a repository ("anon" reads public files only).
TOKENS = {"cache", "browser", "service_account"}


class GdriveRelay(FsspecRelay):
    """A repository in a Google Drive folder, through gdrive-fsspec."""

    def connect(self, address: RelayAddress, options: dict[str, Any]) -> tuple[Any, str]:
        if address.mount is not None:
            return super().connect(address, options)
        root = drive_path(address)  # before any credentials: a wrong address says so first
        account = options.pop("service_account_file", None)
        if account is not None:
            path = os.path.expanduser(str(account))
            if not os.path.isfile(path):
                raise ConfigError(
                    f"{path} is not a file",
                    key="relay_options.service_account_file",
                    hint="give the path of the service account's JSON key",
                )
            options.update(token="service_account", creds=path)
        options.setdefault("token", "cache")
        if options["token"] not in TOKENS:
            raise ConfigError(
                f"{options['token']!r} is not one of {', '.join(sorted(TOKENS))}",
                key="relay_options.token",
                hint='"cache" (the default) uses the credentials cached by one "browser" run; '
                "for a service account give relay_options.service_account_file",
            )
        if options["token"] == "service_account" and options.get("creds") is None:
            raise ConfigError(
                '"service_account" needs the account\'s key',
                key="relay_options.token",
                hint="give relay_options.service_account_file (the JSON key's path) instead",
            )
        if options["token"] == "cache":
            # loaded here, so that gdrive-fsspec is given them: when the cache is missing or
            # unusable, pydata-google-auth would open a browser (never from a daemon, nor unasked)
            given = _GivenCredentials(_cached_credentials(address))
            options["auth_kwargs"] = {**options.get("auth_kwargs", {}), "credentials_cache": given}
        from gdrive_fsspec import GoogleDriveFileSystem  # only here: it imports Google's client

        return GoogleDriveFileSystem(**options), root

    def map_error(self, exc: BaseException, what: str) -> Optional[RelayError]:
        where = (
            f"{what} on {self.address.display()}" if self.address.display() not in what else what
        )
        status = getattr(getattr(exc, "resp", None), "status", None)
        name = type(exc).__name__
        if status in (401, 403) or name in ("RefreshError", "DefaultCredentialsError"):
            return RelayAuthError(f"{where}: Google refused the credentials ({exc}); {HOW}")
        if status == 404 or isinstance(exc, FileNotFoundError):
            return RelayNotFoundError(f"{where}: not found ({exc})")
        if status is not None and (status == 429 or status >= 500):
            return RelayUnavailableError(f"{where}: Google Drive answered {status}; retried later")
        unreachable = ("ServerNotFoundError", "TransportError")  # httplib2's, google-auth's
        if name in unreachable or isinstance(exc, (socket.gaierror, ConnectionError)):
            return RelayUnavailableError(f"{where}: Google Drive cannot be reached ({exc})")
        if (name == "Error" and type(exc).__module__ == "webbrowser") or "browser" in str(exc):
            return RelayAuthError(
                f"{where}: no Google credentials cached and no browser ({exc}); {HOW}"
            )
        if isinstance(exc, (ValueError, KeyError)) and "token" in str(exc).lower():
            return RelayAuthError(f"{where}: no usable Google credentials ({exc}); {HOW}")
        return None


def drive_path(address: RelayAddress) -> str:
    """The repository's folder in the Drive: ``gdrive://Escale/photos``, ``gdrive:///Escale/photos``
    and ``gdrive://root/Escale/photos`` all name ``Escale/photos`` of My Drive (``root`` is
    Google's name for the Drive's top folder; ``relay_options.root_file_id`` picks another).

    :raises ConfigError: the address names no folder (the repository would be mixed with the
        Drive's top-level files), or it looks like a local path missing the ``//`` of the
        mounted form (``gdrive:///home/me/GoogleDrive/Escale``).
    """
    parts = [p for p in f"{address.host or ''}/{address.path}".split("/") if p]
    if parts[:1] == ["root"]:
        parts = parts[1:]
    if not parts:
        raise ConfigError(
            f"{address.display()} names no folder of the Drive",
            key="relay",
            hint='write gdrive://FOLDER/path, e.g. relay = "gdrive://Escale/photos"',
        )
    if address.path.startswith("/") and os.path.isdir("/" + parts[0]):
        raise ConfigError(
            f"{address.display()} looks like a local folder (/{parts[0]} exists here), "
            "not a folder of the Drive",
            key="relay",
            hint="for a Drive folder mounted locally write gdrive:///MOUNT//FOLDER (// after the "
            "mount point); for the Drive itself write gdrive://FOLDER/path",
        )
    return "/".join(parts)


def _cached_credentials(address: RelayAddress) -> Any:
    """The user credentials pydata-google-auth cached (gdrive-fsspec's user login), refreshed.

    :raises RelayAuthError: none are cached, or they cannot be used (expired, revoked, damaged).
    :raises RelayUnavailableError: Google's token endpoint cannot be reached to refresh them.
    """
    import pydata_google_auth.cache as cache  # gdrive-fsspec's dependency

    path = cache.READ_WRITE._path
    where = f"connecting to {address.display()}"
    if not os.path.isfile(path):
        raise RelayAuthError(
            f"{where}: no Google credentials (none cached, no service account); {HOW}"
        )
    try:
        credentials = cache.READ_WRITE.load()  # refreshes them: a request to Google
    except Exception as exc:  # google.auth's TransportError: no network to Google
        raise RelayUnavailableError(f"{where}: Google cannot be reached ({exc})") from exc
    if credentials is None:
        raise RelayAuthError(
            f"{where}: the Google credentials cached in {path} cannot be used (expired, revoked "
            f"or damaged); {HOW}"
        )
    return credentials


class _GivenCredentials:
    """A pydata-google-auth credentials cache holding credentials already loaded: with it,
    ``get_user_credentials`` never starts the browser flow."""

    def __init__(self, credentials: Any) -> None:
        self.credentials = credentials

    def load(self) -> Any:
        """The credentials."""
        return self.credentials

    def save(self, credentials: Any) -> None:
        """Nothing: the cache file is pydata-google-auth's own."""
