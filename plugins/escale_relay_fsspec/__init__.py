"""Built-in relays for every fsspec protocol.

``file`` and ``memory`` work out of the box; network protocols are lazy entries whose packages
are imported only when a section uses them, with an install hint when they are missing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Optional

from escale_core import hookimpl
from escale_core.entrypoints import entry_points_of
from escale_core.hookspecs import RegisterRelay

RELAY = "escale_relay_fsspec.relay:FsspecRelay"
#: Relays with a class of their own, over the same adapter.
OWN_CLASS = {"gdrive": "escale_relay_fsspec.gdrive:GdriveRelay"}
#: What escale's tests run these schemes against (the others go through the generic adapter,
#: never tried against their storage).
VERIFIED = {
    "file": ("local folders",),
    "local": ("local folders",),
    "gdrive": ("a Drive folder mounted locally (gdrive:///mount//folder)",),
}
#: Why a relay with a class of its own is not tested (against what it reaches by network).
UNTESTED = {
    "gdrive": "Google Drive's API (gdrive://FOLDER/path) needs a Google account and network; "
    "rclone://REMOTE/path is the tested relay (over rclone's own Drive backend)"
}
GENERIC = "generic fsspec adapter, never run against this storage"

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
    "smb",
    "oss",
    "oci",
    "webhdfs",
}
#: fsspec protocols that cannot hold a repository: read-only (http, github, git, zip, tar...),
#: wrappers and caches of another file system, or storage gone when the process ends.
NOT_RELAYS = {
    "async_wrapper", "asynclocal", "asyncwrapper", "blockcache", "cached", "dask", "data",
    "dir", "dvc", "filecache", "generic", "gist", "git", "github", "http", "https", "jlab",
    "jupyter", "libarchive", "pyscript", "reference", "root", "simplecache", "tar", "wandb",
    "zip",
}  # fmt: skip
#: Relays for tests and the Python API only: nothing is kept between two runs.
FOR_TESTS = {"memory"}
#: Schemes that accept ``scheme:///mount//folder`` (storage mounted locally).
MULTIPATH = {"file", "local", "gdrive", "dropbox", "box", "onedrive"}


@hookimpl
def register_relays(register: RegisterRelay) -> None:
    """Register one relay per fsspec protocol, plus webdavs and ftps."""
    table = fsspec_protocols()
    classes = {name: spec["class"] for name, spec in table.items()}
    hints = {name: spec.get("err", "") for name, spec in table.items()}
    for variant, base in VARIANTS.items():
        if base in classes:
            classes[variant], hints[variant] = classes[base], hints.get(base, "")
    for scheme, class_path in sorted(classes.items()):
        if scheme in SPECIALIZED or scheme in NOT_RELAYS:
            continue
        module = class_path.split(".")[0]
        extra = EXTRAS.get(scheme)
        hint = f"pip install 'escale[{extra}]'" if extra else hints.get(scheme, "")
        register(
            scheme,
            OWN_CLASS.get(scheme, RELAY),
            description=f"fsspec {class_path}",
            requires=() if module == "fsspec" else (module,),
            install_hint=hint,
            multipath=scheme in MULTIPATH,
            needs_host=scheme in NEEDS_HOST,
            for_tests=scheme in FOR_TESTS,
            untested=_untested(scheme),
            verified=VERIFIED.get(scheme, ()),
        )


def _untested(scheme: str) -> str:
    """Why ``scheme`` was never run against its storage ("" if it was)."""
    if scheme in UNTESTED:
        return UNTESTED[scheme]
    return "" if scheme in VERIFIED or scheme in FOR_TESTS else GENERIC


def fsspec_protocols() -> dict[str, dict[str, str]]:
    """fsspec's protocols: ``{name: {"class": "pkg.mod.Class", "err": install hint}}``.

    Read from fsspec's source when fsspec is not imported yet: importing it costs about 50 ms
    at every escale start, and sections on local folders never use it. Any surprise in that
    source falls back to importing fsspec.
    """
    module = sys.modules.get("fsspec.registry")
    if module is None:
        try:
            return _read_fsspec_table()
        except Exception:  # another fsspec layout: ask fsspec itself
            module = importlib.import_module("fsspec.registry")
    table = {name: dict(spec) for name, spec in module.known_implementations.items()}
    for name, cls in module.registry.items():
        table.setdefault(name, {"class": f"{cls.__module__}.{cls.__name__}"})
    return table


def _read_fsspec_table() -> dict[str, dict[str, str]]:
    """``known_implementations`` of ``fsspec/registry.py`` (a dict literal), plus what the
    ``fsspec.specs`` entry points add, as fsspec's ``process_entries`` does at import."""
    import ast  # only here: a plugin's import is paid at every escale start

    spec = importlib.util.find_spec("fsspec")
    if spec is None or spec.origin is None:
        raise LookupError("fsspec is not installed")
    source = Path(spec.origin).with_name("registry.py").read_text(encoding="utf-8")
    table: Optional[dict[str, dict[str, str]]] = None
    for node in ast.parse(source).body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == "known_implementations":
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            table = ast.literal_eval(value) if value is not None else None
    if not isinstance(table, dict):
        raise LookupError("fsspec/registry.py has no known_implementations literal")
    for entry in entry_points_of("fsspec.specs"):  # remembered: no importlib.metadata
        table[entry.name] = {
            "class": entry.value.replace(":", "."),
            "err": (  # fsspec's words, which print its EntryPoint
                f"Unable to load filesystem from EntryPoint(name={entry.name!r}, "
                f"value={entry.value!r}, group='fsspec.specs')"
            ),
        }
    return table
