"""Every configuration key: name, type, default, original Escale aliases, documentation.

Keys compare case-insensitively with spaces, dashes and underscores equal, so ``puller count``,
``Puller-Count`` and ``puller_count`` are one key. ``docs/config.md`` documents each key below
(a test checks it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from ..versions import KINDS as VERSION_POLICY_KINDS
from . import values as v

REQUIRED = object()
"""Default of a key that must be set."""


@dataclass(frozen=True)
class Option:
    """One configuration key.

    :param name: canonical name (``snake_case``).
    :param convert: converter from the TOML value (see :mod:`escale_core.config.values`).
    :param default: typed default, :data:`REQUIRED`, or ``None`` for "not set".
    :param type: the type as documented.
    :param doc: one line of documentation.
    :param aliases: other accepted spellings (original Escale names).
    :param secret: masked when settings are printed.
    """

    name: str
    convert: v.Converter
    default: Any
    type: str
    doc: str
    aliases: tuple[str, ...] = ()
    secret: bool = False


MODES = {
    "shared": "shared",
    "share": "shared",
    "sharing": "shared",
    "upload": "upload",
    "push": "upload",
    "download": "download",
    "pull": "download",
    "conservative": "conservative",
    "protective": "conservative",
    "preservative": "conservative",
}

LOG_LEVELS = {name: name for name in ("debug", "info", "warning", "error")}

VERSION_KINDS = {name: name for name in VERSION_POLICY_KINDS}


def _to_max_age(value: Any, ctx: v.Context) -> Optional[float]:
    """A duration, or ``false``/``""`` for "not set" (``true`` names no duration here)."""
    if value is True:
        raise ValueError('expected a duration like "30d", or false for the default, got true')
    result: Optional[float] = v.optional(v.to_duration(1.0))(value, ctx)
    return result


SECTION_OPTIONS: tuple[Option, ...] = (
    Option(
        "path",
        v.to_path,
        REQUIRED,
        "path",
        "Local folder to keep in sync.",
        ("local path", "local directory", "local dir"),
    ),
    Option(
        "relay",
        v.to_str,
        REQUIRED,
        "URL",
        "Relay address: scheme://[user@]host[:port]/path, scheme:///mount//folder, or a "
        "local folder.",
    ),
    Option(
        "relay_options",
        v.to_table,
        {},
        "table",
        "Options passed to the relay's fsspec filesystem (endpoint_url, key_filename...).",
    ),
    Option(
        "username",
        v.to_str,
        None,
        "string",
        "User name on the relay.",
        ("user", "auth user", "host user", "relay user", "remote user"),
    ),
    Option(
        "password",
        v.to_str,
        None,
        "string",
        "Password on the relay (prefer password_file).",
        ("secret", "credential"),
        secret=True,
    ),
    Option(
        "password_file",
        v.to_path,
        None,
        "path",
        "File holding the relay password, or a user:password line.",
        ("secret file",),
    ),
    Option(
        "client",
        v.to_str,
        None,
        "string",
        "This client's name, unique per repository (default: the host name).",
        ("client name",),
    ),
    Option(
        "mode",
        v.to_choice(MODES),
        "shared",
        "shared | upload | download | conservative",
        "What this client does: push and pull, push only, pull only, or pull without "
        "overwriting local changes.",
        ("synchronization mode", "sync mode"),
    ),
    Option(
        "encryption",
        v.to_bool_or_str,
        "aes-256-gcm",
        "cipher name",
        "Cipher: aes-256-gcm, chacha20-poly1305, fernet, plain (true = aes-256-gcm, "
        "false = plain).",
    ),
    Option(
        "passphrase",
        v.to_str,
        None,
        "string",
        "Passphrase of the repository key (prefer passphrase_file).",
        ("key",),
        secret=True,
    ),
    Option(
        "passphrase_file",
        v.to_path,
        None,
        "path",
        "File whose first line is the passphrase.",
        ("key file",),
    ),
    Option(
        "pullers",
        v.to_int(1),
        1,
        "integer >= 1",
        "An update is deleted from the relay once this many clients acknowledged it.",
        ("puller count", "count"),
    ),
    Option(
        "quota",
        v.optional(v.to_size),
        None,
        "size",
        'Never let the relay repository grow past this size ("2GB"; a bare number is MB).',
        ("disk quota",),
    ),
    Option(
        "refresh",
        v.to_positive_float,
        30.0,
        "seconds",
        "Longest pause between two rounds when watching (adaptive from refresh/2).",
    ),
    Option(
        "watch",
        v.to_bool,
        True,
        "boolean",
        "Follow file-system events of the local folder (and of a local relay folder) to start "
        "a round when something changes; false: rounds on the timer only.",
    ),
    Option(
        "rescan_interval",
        v.to_duration(3600.0),
        3600.0,
        "duration",
        'With file-system events on both sides, the longest pause between two rounds ("1h").',
    ),
    Option(
        "include",
        v.to_patterns,
        [],
        "patterns",
        "Only sync files whose name matches one of these (wildcard or /regex/).",
        ("include files", "pattern", "filter"),
    ),
    Option(
        "exclude",
        v.to_patterns,
        [],
        "patterns",
        "Never sync files whose name matches one of these.",
        ("exclude files",),
    ),
    Option(
        "include_directories",
        v.to_patterns,
        [],
        "patterns",
        "Only enter folders whose relative path matches one of these.",
        ("include directory",),
    ),
    Option(
        "exclude_directories",
        v.to_patterns,
        [],
        "patterns",
        "Never enter folders whose name or relative path matches one of these.",
        ("exclude directory",),
    ),
    Option(
        "file_types",
        v.to_extensions,
        [],
        "extensions",
        'Only sync files with these extensions ("jpg" or ".jpg").',
        ("file type", "file extension", "file extensions", "filetype"),
    ),
    Option(
        "checksum",
        v.to_bool_or_str,
        "auto",
        "checksum name",
        "Checksum algorithm; auto = the fastest strong one installed (blake3, else blake2b).",
        ("hash algorithm",),
    ),
    Option(
        "checksum_cache",
        v.to_bool,
        True,
        "boolean",
        "Cache checksums by (size, mtime, inode) so unchanged files are never re-read.",
    ),
    Option(
        "index",
        v.to_bool_or_str,
        True,
        "boolean or string",
        "Accepted for compatibility with the original; escale always bundles small files.",
        ("compact",),
    ),
    Option(
        "max_page_size",
        v.to_size,
        8 * 1024**2,
        "size",
        'Largest pack of small files, and chunk size of big files ("8MiB").',
        ("maxpagesize", "max archive size", "maxarchivesize", "page size"),
    ),
    Option(
        "lock_timeout",
        v.to_duration(1800.0),
        1800.0,
        "duration",
        'A relay lock not refreshed for this long is stale (30, "30m", "3d").',
    ),
    Option(
        "wait_on_error",
        v.to_int_list,
        [],
        "integer codes",
        "Extra error codes (errno or HTTP status) that mean 'wait and retry'.",
        ("waitonerror",),
    ),
    Option(
        "propagate_deletions",
        v.to_bool,
        True,
        "boolean",
        "Send local deletions to the other clients (as tombstones).",
    ),
    Option(
        "timestamp",
        v.to_bool_or_str,
        True,
        "boolean",
        "Restore modification times on pull.",
        ("modification time", "mtime"),
    ),
    Option(
        "verbosity",
        v.to_int(0),
        1,
        "integer >= 0",
        "Log detail: 0 quiet, 1 normal, 2 debug.",
        ("verbosity level",),
    ),
    Option(
        "versions",
        v.to_choice(VERSION_KINDS),
        "trash",
        "trash | simple | staggered | none",
        "Previous versions of files a pull replaces or deletes, kept in .escale/versions.",
    ),
    Option(
        "versions_keep",
        v.to_int(1),
        5,
        "integer >= 1",
        'How many versions of each file versions = "simple" keeps.',
    ),
    Option(
        "versions_max_age",
        _to_max_age,
        None,
        "duration",
        'Versions older than this are deleted ("30d"; default 30 days for trash, '
        "365 days for staggered, no limit for simple).",
    ),
)

GLOBAL_OPTIONS: tuple[Option, ...] = (
    Option("log_file", v.to_path, None, "path", "Log file of the daemon (rotated)."),
    Option(
        "log_level",
        v.to_choice(LOG_LEVELS),
        "info",
        "debug | info | warning | error",
        "Level of the log file.",
    ),
    Option("log_rotate", v.to_int(0), 3, "integer >= 0", "Rotated log files kept."),
    Option(
        "state_dir",
        v.to_path,
        None,
        "path",
        "Where per-section state lives (default: the user state directory; "
        "$ESCALE_STATE_DIR overrides).",
        ("cache dir", "cache"),
    ),
)

#: Original Escale keys that spell the relay in pieces; they are combined into ``relay``.
LEGACY_RELAY_PARTS: dict[str, tuple[str, ...]] = {
    "protocol": ("protocol",),
    "address": ("host address", "relay address", "remote address", "address"),
    "port": ("port", "host port", "relay port", "remote port"),
    "directory": (
        "directory",
        "host directory",
        "relay directory",
        "remote directory",
        "relay dir",
        "remote dir",
        "host dir",
        "dir",
        "host path",
        "relay path",
        "remote path",
    ),
}

#: Original Escale keys that set the mode as booleans.
LEGACY_MODE_FLAGS: dict[str, tuple[str, str]] = {
    "push_only": ("upload", "push only"),
    "read_only": ("upload", "read only"),
    "pull_only": ("download", "pull only"),
    "write_only": ("download", "write only"),
}

#: Original Escale keys that have no effect in escale: accepted with a warning.
OBSOLETE: dict[str, str] = {
    "maintainer": "escale does not send mail",
    "email": "escale does not send mail",
    "pull_overwrite": "pulls always verify checksums",
    "allow_page_deletion": "new clients join without deleting anything",
    "page_deletion": "new clients join without deleting anything",
    "min_split_size": "big files are always chunked",
    "split_size": "big files are always chunked",
    "split": "big files are always chunked",
    "max_pending_transfers": "the quota bounds the relay",
    "retry_on_error": "use wait_on_error",
    "retryonerror": "use wait_on_error",
    "priority": "rounds push then pull",
    "upload_max_wait": "rounds never wait for pullers",
    "max_retries": "use wait_on_error",
    "ssl_version": "use relay_options",
    "verify_ssl": "use relay_options",
    "certfile": "use relay_options",
    "cert_file": "use relay_options",
    "certificate": "use relay_options",
    "keyfile": "use relay_options",
    "private_key": "use relay_options",
    "rclone_binary": "relays go through fsspec",
    "drive_binary": "relays go through fsspec",
    "keep_alive": "the daemon restarts sections",
    "log_rotate_size": "log files rotate at 1 MiB",
}


def normalize_key(key: str) -> str:
    """Fold a key: case-insensitive, spaces, dashes and underscores equal."""
    return re.sub(r"[\s_-]+", "_", key.strip().lower())


def _alias_table(options: tuple[Option, ...]) -> dict[str, str]:
    table: dict[str, str] = {}
    for option in options:
        for spelling in (option.name, *option.aliases):
            table[normalize_key(spelling)] = option.name
    return table


SECTION_KEYS = _alias_table(SECTION_OPTIONS)
GLOBAL_KEYS = _alias_table(GLOBAL_OPTIONS)
LEGACY_RELAY_KEYS = {normalize_key(a): part for part, al in LEGACY_RELAY_PARTS.items() for a in al}
SECTION_BY_NAME = {o.name: o for o in SECTION_OPTIONS}
GLOBAL_BY_NAME = {o.name: o for o in GLOBAL_OPTIONS}
