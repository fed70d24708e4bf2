"""An example escale relay plugin: the scheme ``example:///folder`` keeps objects in a folder.

It shows the whole plugin contract: one hook implementation that registers a relay scheme,
and a :class:`~escale_core.relay.Relay` subclass that stores objects atomically.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from escale_core import hookimpl
from escale_core.address import RelayAddress
from escale_core.hookspecs import RegisterRelay
from escale_core.relay import Capabilities, Relay, mapped_errors


class ExampleRelay(Relay):
    """Objects are files under the folder named by the address's path."""

    capabilities = Capabilities(atomic_rename=True, exclusive_create=True)

    def __init__(self, address: RelayAddress, **options: Any) -> None:
        super().__init__(address, **options)
        self.root = Path(address.path)

    def _path(self, name: str) -> Path:
        return self.root / name

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        with mapped_errors(f"listing {base}"):
            return sorted(
                p.relative_to(self.root).as_posix()
                for p in base.rglob("*")
                if p.is_file() and not p.name.startswith(".tmp-")
            )

    def read_bytes(self, name: str) -> bytes:
        with mapped_errors(f"reading {name}"):
            return self._path(name).read_bytes()

    def write_bytes(self, name: str, data: bytes) -> None:
        target = self._path(name)
        with mapped_errors(f"writing {name}"):
            target.parent.mkdir(parents=True, exist_ok=True)
            # write-then-publish: readers never see a partial object
            fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)

    def create_exclusive(self, name: str, data: bytes) -> bool:
        target = self._path(name)
        with mapped_errors(f"creating {name}"):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            try:
                os.link(temp, target)  # atomic: fails if the name exists
                return True
            except FileExistsError:
                return False
            finally:
                os.unlink(temp)

    def delete(self, name: str) -> None:
        with mapped_errors(f"deleting {name}"):
            self._path(name).unlink(missing_ok=True)


@hookimpl
def register_relays(register: RegisterRelay) -> None:
    """Register the ``example`` scheme."""
    register("example", ExampleRelay, description="example relay: objects in a local folder")
