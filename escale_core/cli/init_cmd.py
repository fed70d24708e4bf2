"""``escale init``: set up a section, asking on a terminal or from flags (``--yes``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import typer

from ..errors import UsageError

if TYPE_CHECKING:
    from ..ops.init import InitRequest, InitResult
    from ..probe import Check

#: The modes, as asked (the configuration also reads the original Escale's aliases).
MODE_NAMES = ["shared", "upload", "download", "conservative"]


class Asker:
    """Takes each value from its flag, else asks on the terminal, else fails (exit 2)."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive

    def value(self, given: Any, flag: str, question: str, **prompt: Any) -> Any:
        """``given``, or the answer to ``question``; without a terminal (or with ``--yes``) a
        missing value with no default is a usage error."""
        if given is not None:
            return given
        if self.interactive:
            return typer.prompt(question, **prompt)
        if "default" in prompt:
            return prompt["default"]
        raise UsageError(f"escale init: missing {flag} (or run it on a terminal without --yes)")


def _key_choice(
    ask: Asker, request: InitRequest, config_file: Path, passphrase_file: Optional[Path]
) -> None:
    """Fill in the key: a given file, a generated one, or (asked) either."""
    from ..ops.init import key_file_for

    if request.encryption == "plain" or passphrase_file is not None or request.generate_key:
        request.passphrase_file = passphrase_file
        return
    if not ask.interactive:
        return  # init_section names the missing flag
    target = key_file_for(config_file, request.section)
    if typer.confirm(f"Generate a new key file {target}?", default=True):
        request.generate_key = True
    else:
        answer = typer.prompt("Passphrase file (first line: the passphrase)")
        request.passphrase_file = Path(answer).expanduser()


def _accept(ask: Asker) -> Callable[[list[Check]], bool]:
    def accept(checks: list[Check]) -> bool:
        from ..probe import format_checks

        if not ask.interactive:
            return False  # the error line names the failed probes
        typer.echo(format_checks(checks), err=True)
        return bool(typer.confirm("Some probes failed; go on anyway?", default=False))

    return accept


def _report(result: InitResult, name: str) -> None:
    if result.checks:
        typer.echo(
            f"[{name}] relay probes: all passed"
            if all(c.ok is not False for c in result.checks)
            else f"[{name}] relay probes: some failed (accepted)"
        )
    if result.created:
        typer.echo(f"[{name}] created repository {result.repository} on the relay")
    else:
        typer.echo(
            f"[{name}] joined the existing repository {result.repository} on the relay "
            "(the passphrase unwraps its key)"
        )
    if result.folder_created:
        typer.echo(f"[{name}] created the local folder")
    typer.echo(f"[{name}] written to {result.config_file}; run 'escale sync {name}'")


def register(app: typer.Typer) -> None:
    """Add ``init`` to ``app``."""

    @app.command()
    def init(
        ctx: typer.Context,
        section: Optional[str] = typer.Argument(
            None, metavar="SECTION", help="The new section's name."
        ),
        path: Optional[Path] = typer.Option(None, "--path", metavar="P", help="The local folder."),
        relay: Optional[str] = typer.Option(None, "--relay", metavar="URL", help="Relay URL."),
        client: Optional[str] = typer.Option(
            None, "--client", metavar="NAME", help="This client's name (default: host name)."
        ),
        mode: Optional[str] = typer.Option(
            None, "--mode", metavar="M", help="shared | upload | download | conservative."
        ),
        pullers: Optional[int] = typer.Option(
            None, "--pullers", metavar="N", min=1, help="Pullers (default 1)."
        ),
        encryption: str = typer.Option(
            "aes-256-gcm", "--encryption", metavar="C", help="Cipher of a new repository."
        ),
        passphrase_file: Optional[Path] = typer.Option(
            None, "--passphrase-file", metavar="FILE", help="An existing passphrase file."
        ),
        generate_key: bool = typer.Option(
            False, "--generate-key", help="Generate a key file next to the configuration."
        ),
        relay_option: list[str] = typer.Option(
            [], "--relay-option", metavar="KEY=VALUE", help="A relay option (repeatable)."
        ),
        no_probe: bool = typer.Option(False, "--no-probe", help="Do not probe the relay."),
        force: bool = typer.Option(False, "--force", help="Replace an existing section."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Ask nothing (for scripts)."),
    ) -> None:
        """Set up a section: its relay, local folder and key; create or join the repository.

        On a terminal it asks for what the flags do not give; with --yes it asks nothing."""
        import click

        from ..config.schema import MODES
        from ..config.sections import default_client_name
        from ..ops.init import (
            InitRequest,
            init_config_file,
            init_section,
            parse_relay_option,
            refuse_existing,
        )
        from ..plugins import get_plugins

        if passphrase_file is not None and generate_key:
            raise UsageError("give --passphrase-file or --generate-key, not both")
        if mode is not None and mode.lower() not in MODES:
            raise UsageError(f"--mode {mode!r}: use one of {', '.join(MODE_NAMES)}")
        ask = Asker(not yes and sys.stdin.isatty())
        config_file = init_config_file(ctx.obj.config)
        name = str(ask.value(section, "SECTION", "Section name")).strip()
        if not force:
            refuse_existing(config_file, name)  # before asking anything more
        request = InitRequest(
            section=name,
            path=Path(ask.value(path, "--path", "Local folder to sync")).expanduser(),
            relay=str(ask.value(relay, "--relay", "Relay URL")),
            client=ask.value(client, "--client", "Client name", default=default_client_name(name)),
            mode=MODES[
                str(
                    ask.value(
                        mode, "--mode", "Mode", default="shared", type=click.Choice(MODE_NAMES)
                    )
                ).lower()
            ],
            pullers=int(ask.value(pullers, "--pullers", "Pullers", default=1, type=int)),
            encryption=encryption,
            generate_key=generate_key,
            relay_options=dict(parse_relay_option(text) for text in relay_option),
            force=force,
        )
        _key_choice(ask, request, config_file, passphrase_file)
        result = init_section(
            request,
            config_file,
            get_plugins(),
            probe=not no_probe,
            accept_failed_probe=_accept(ask),
            say=typer.echo,
        )
        _report(result, name)
