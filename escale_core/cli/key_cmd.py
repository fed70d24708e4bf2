"""``escale key passwd``: wrap the repository's key with a new passphrase."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError


def new_passphrase(file: Optional[Path], generate: bool) -> bytes:
    """The new passphrase: the first line of ``file``, a generated one, or typed twice.

    :raises UsageError: none of them can be had, or both options are given."""
    from ..ops.keys import check_new_passphrase

    if file is not None and generate:
        raise UsageError("give --new-passphrase-file or --generate, not both")
    if generate:
        import secrets

        return secrets.token_urlsafe(32).encode()
    if file is not None:
        try:
            lines = file.expanduser().read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            problem = getattr(exc, "strerror", None) or exc
            raise UsageError(f"--new-passphrase-file: cannot read {file}: {problem}") from None
        if not lines or not lines[0].strip():
            raise UsageError(f"--new-passphrase-file: {file} is empty")
        return check_new_passphrase(lines[0].strip().encode())
    if not sys.stdin.isatty():
        raise UsageError(
            "no new passphrase: give --new-passphrase-file FILE or --generate "
            "(or run on a terminal to type it)"
        )
    typed = typer.prompt("New passphrase", hide_input=True, confirmation_prompt=True, err=True)
    return check_new_passphrase(str(typed).encode())


def register(app: typer.Typer) -> None:
    """Add the ``key`` command group to ``app``."""
    group = typer.Typer(help="The repository's key and passphrase.", no_args_is_help=True)
    app.add_typer(group, name="key")

    @group.command("passwd")
    def passwd(
        ctx: typer.Context,
        section: str = typer.Argument(..., metavar="SECTION", help="The section."),
        new_passphrase_file: Optional[Path] = typer.Option(
            None, "--new-passphrase-file", metavar="FILE", help="Read the new passphrase here."
        ),
        generate: bool = typer.Option(
            False, "--generate", help="Generate a random new passphrase."
        ),
    ) -> None:
        """Wrap the repository's key with a new passphrase (the data is not sealed again).

        The new passphrase replaces the section's passphrase file (or its passphrase key);
        the other clients refuse to sync until they have it. Safe to run again if
        interrupted."""
        from ..config import load_config
        from ..ops.keys import change_passphrase
        from ..plugins import get_plugins

        plugins = get_plugins()
        config = load_config(ctx.obj.config, plugins)
        conf = config.section(section)
        new = new_passphrase(new_passphrase_file, generate)
        result = change_passphrase(config, conf, plugins, new)
        if result.finished_interrupted:
            typer.echo(f"[{section}] finished an interrupted 'escale key passwd'")
        if result.unchanged:
            typer.echo(f"[{section}] the passphrase in {result.place} is already in force")
            return
        typer.echo(
            f"[{section}] passphrase changed: the repository's key is now wrapped with the "
            f"passphrase in {result.place}; give it to the other clients (they refuse to sync "
            "until their passphrase file holds it)"
        )
