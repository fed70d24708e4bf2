"""S3 relay: s3fs, with object-store semantics (no rename; conditional create)."""

from __future__ import annotations

from typing import Any

from escale_relay_fsspec.relay import FsspecRelay

from escale_core.address import RelayAddress


class S3Relay(FsspecRelay):
    """Objects under ``bucket/prefix``."""

    def connect(self, address: RelayAddress, options: dict[str, Any]) -> tuple[Any, str]:
        from s3fs import S3FileSystem

        fs = S3FileSystem(skip_instance_cache=True, **options)
        return fs, f"{address.host}{address.path}"
