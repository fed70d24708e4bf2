"""Commands of the command-line contract (DESIGN §4) that this release does not provide yet.

They are listed so that ``escale --help`` shows the whole contract; each says it is not
available and exits with status 2.
"""

from __future__ import annotations

from typing import NoReturn

import typer

from ..errors import NotImplementedYet


def not_yet(command: str) -> NoReturn:
    """Fail with exit status 2: ``command`` is not available in this release."""
    raise NotImplementedYet(f"'escale {command}' is not implemented in this release yet")


def register(app: typer.Typer) -> None:
    """Add the not-yet-implemented commands to ``app`` (none left in this release: every
    command of the contract works; :func:`not_yet` stays for plugins and future ones)."""
