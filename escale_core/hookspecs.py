"""Hook specifications: what an escale plugin may provide.

A plugin is a module (or any object) with functions decorated by :data:`escale_core.hookimpl`
(``pluggy.HookimplMarker("escale")``) and named like the hooks below. Third-party plugins are
found through the ``escale`` entry-point group; built-ins under ``plugins/escale_*`` implement
the very same hooks.

The ``register_*`` hooks receive a ``register`` callback instead of returning values: escale
validates each entry when it is registered and credits it to the plugin that registered it, so
that two plugins claiming one name is an error naming both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, Union

import pluggy

if TYPE_CHECKING:
    import typer

hookspec = pluggy.HookspecMarker("escale")

#: A lazy target: ``"package.module:Attribute"``, imported only when first used.
LazyTarget = str


class RegisterRelay(Protocol):
    """The ``register`` callback of :func:`register_relays`."""

    def __call__(
        self,
        scheme: str,
        relay: Union[LazyTarget, Any],
        *,
        description: str = "",
        requires: Sequence[str] = (),
        install_hint: str = "",
        multipath: bool = False,
        needs_host: bool = False,
        for_tests: bool = False,
        untested: str = "",
        verified: Sequence[str] = (),
    ) -> None:
        """Declare that URLs ``scheme://...`` are served by ``relay``.

        :param scheme: the URL scheme, lower case (``"sftp"``).
        :param relay: a relay factory, or ``"pkg.mod:Factory"`` imported on first use. The factory
            is called as ``factory(address, **options)`` with a parsed
            :class:`escale_core.address.RelayAddress`.
        :param description: one line shown by ``escale plugins list``.
        :param requires: importable module names the relay needs (checked without importing).
        :param install_hint: what to run when ``requires`` is missing
            (``pip install 'escale[s3]'``).
        :param multipath: the scheme accepts ``scheme:///mount//relative`` addresses.
        :param needs_host: an address without a host (or bucket) is a configuration error.
        :param for_tests: storage that cannot keep a repository between two runs (``memory``):
            open with :func:`escale_core.relay.open_relay` from Python, never offered by
            ``escale plugins list`` nor accepted in a configuration.
        :param untested: why the plugin's authors never ran this relay against its real
            storage (``"needs a Google account"``); empty when it is tested. ``escale plugins
            list`` marks such a relay, so that users know what they rely on.
        :param verified: the real servers or storage the plugin's tests run this relay against
            (``("vsftpd 3.0", "ProFTPD 1.3.8")``), printed by ``escale plugins list``. A relay
            may have both: ``gdrive`` is verified against a mounted Drive folder and untested
            against Google's API.
        """


class RegisterCipher(Protocol):
    """The ``register`` callback of :func:`register_ciphers`."""

    def __call__(
        self,
        name: str,
        cipher: Union[LazyTarget, Any],
        *,
        description: str = "",
        requires: Sequence[str] = (),
        install_hint: str = "",
    ) -> None:
        """Declare the cipher ``name`` (the ``encryption`` key of a section).

        :param name: the cipher name, lower case (``"aes-256-gcm"``).
        :param cipher: a :class:`escale_core.cipher.Cipher` subclass or ``"pkg.mod:Class"``.
        :param description: one line shown by ``escale plugins list``.
        :param requires: importable module names the cipher needs.
        :param install_hint: what to run when ``requires`` is missing.
        """


class RegisterChecksum(Protocol):
    """The ``register`` callback of :func:`register_checksums`."""

    def __call__(
        self,
        name: str,
        checksum: Union[LazyTarget, Any],
        *,
        description: str = "",
        requires: Sequence[str] = (),
        install_hint: str = "",
        speed: int = 0,
    ) -> None:
        """Declare the checksum ``name`` (the ``checksum`` key of a section).

        :param name: the algorithm name, lower case (``"blake3"``).
        :param checksum: a callable returning a new hashlib-like object (``update``,
            ``digest``, ``hexdigest``), or ``"pkg.mod:attr"``.
        :param description: one line shown by ``escale plugins list``.
        :param requires: importable module names the checksum needs.
        :param install_hint: what to run when ``requires`` is missing.
        :param speed: a rough rank (higher is faster) used to pick the default checksum among
            the cryptographically strong ones; ``0`` means never picked by default.
        """


@hookspec
def register_relays(register: RegisterRelay) -> None:
    """Register relay schemes.

    :param register: call it once per scheme; see :class:`RegisterRelay`.
    """


@hookspec
def register_ciphers(register: RegisterCipher) -> None:
    """Register ciphers usable as a section's ``encryption``.

    :param register: call it once per cipher; see :class:`RegisterCipher`.
    """


@hookspec
def register_checksums(register: RegisterChecksum) -> None:
    """Register checksum algorithms usable as a section's ``checksum``.

    :param register: call it once per algorithm; see :class:`RegisterChecksum`.
    """


@hookspec
def register_commands(app: typer.Typer) -> None:
    """Add commands to the ``escale`` command line.

    :param app: the root :class:`typer.Typer` application; add commands or sub-applications
        with ``@app.command()`` or ``app.add_typer(...)``. A command name already taken is an
        error naming the plugin.
    """
