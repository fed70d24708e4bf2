"""Built-in relay ``s3://bucket/prefix``, through s3fs."""

from __future__ import annotations

from escale_core import hookimpl
from escale_core.hookspecs import RegisterRelay


@hookimpl
def register_relays(register: RegisterRelay) -> None:
    """Register ``s3`` and ``s3a``."""
    for scheme in ("s3", "s3a"):
        register(
            scheme,
            "escale_relay_s3.relay:S3Relay",
            requires=("s3fs",),
            install_hint="pip install 'escale[s3]'",
            needs_host=True,
            verified=("moto 5",),
            description="S3 and compatible object stores through s3fs",
        )
