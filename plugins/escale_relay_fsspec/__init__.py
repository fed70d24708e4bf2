"""Built-in relays for every fsspec protocol.

``file`` and ``memory`` work out of the box; network protocols are lazy entries whose packages
are imported only when a section uses them, with an install hint when they are missing.
"""

from __future__ import annotations

from escale_core import hookimpl
from escale_core.hookspecs import RegisterRelay

RELAY = "escale_relay_fsspec.relay:FsspecRelay"

#: escale's own extras for the relays it supports first-hand.
EXTRAS = {
    "webdav": "webdav",
    "webdavs": "webdav",
    "sftp": "sftp",
    "ssh": "sftp",
    "ftp": "ftp",
    "ftps": "ftp",
    "s3": "s3",
    "s3a": "s3",
    "gdrive": "gdrive",
}
#: escale schemes that are variants of an fsspec protocol.
VARIANTS = {"webdavs": "webdav", "ftps": "ftp"}
#: Schemes served by escale's dedicated backend plugins (escale_relay_webdav, _sftp, _ftp, _s3).
SPECIALIZED = {"webdav", "webdavs", "sftp", "ssh", "ftp", "ftps", "s3", "s3a"}
#: Schemes whose addresses must name a host or bucket.
NEEDS_HOST = {
    "webdav",
    "webdavs",
    "sftp",
    "ssh",
    "ftp",
    "ftps",
    "s3",
    "s3a",
    "gs",
    "gcs",
    "az",
    "abfs",
    "http",
    "https",
    "smb",
    "oss",
    "oci",
    "webhdfs",
}
#: Schemes that accept ``scheme:///mount//folder`` (storage mounted locally).
MULTIPATH = {"file", "local", "gdrive", "dropbox", "box", "onedrive"}


@hookimpl
def register_relays(register: RegisterRelay) -> None:
    """Register one relay per fsspec protocol, plus webdavs and ftps."""
    from fsspec.registry import known_implementations, registry

    classes = {name: spec["class"] for name, spec in known_implementations.items()}
    hints = {name: spec.get("err", "") for name, spec in known_implementations.items()}
    for name, cls in registry.items():
        classes.setdefault(name, f"{cls.__module__}.{cls.__name__}")
    for variant, base in VARIANTS.items():
        if base in classes:
            classes[variant], hints[variant] = classes[base], hints.get(base, "")
    for scheme, class_path in sorted(classes.items()):
        if scheme in SPECIALIZED:
            continue
        module = class_path.split(".")[0]
        extra = EXTRAS.get(scheme)
        hint = f"pip install 'escale[{extra}]'" if extra else hints.get(scheme, "")
        register(
            scheme,
            RELAY,
            description=f"fsspec {class_path}",
            requires=() if module == "fsspec" else (module,),
            install_hint=hint,
            multipath=scheme in MULTIPATH,
            needs_host=scheme in NEEDS_HOST,
        )
