"""The root of the ``escale`` command line in typer: global options, the core commands and
the plugins' (errors and exit statuses: :mod:`.main`, the entry point)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer

from .. import __version__

log = logging.getLogger("escale")


@dataclass
class Options:
    """The global options, handed to every command through ``ctx.obj``."""

    config: Optional[Path] = None
    verbosity: int = 0


def _version(value: bool) -> None:
    if value:
        typer.echo(f"escale {__version__}")
        raise typer.Exit()


def core_app() -> typer.Typer:
    """The application with the core commands only (no plugin is loaded)."""
    from . import (
        access_cmd,
        backup_cmd,
        check_cmd,
        clients_cmd,
        config_cmd,
        daemon_cmd,
        demo_cmd,
        fix_cmd,
        init_cmd,
        key_cmd,
        migrate_cmd,
        pending,
        plugins_cmd,
        relay_cmd,
        service_cmd,
        status_cmd,
        sync_cmd,
        versions_cmd,
    )

    app = typer.Typer(
        name="escale",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        help="Keep folders in sync through an untrusted passive relay storage.",
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    for module in (
        sync_cmd,
        status_cmd,
        access_cmd,
        plugins_cmd,
        demo_cmd,
        relay_cmd,
        init_cmd,
        key_cmd,
        config_cmd,
        versions_cmd,
        clients_cmd,
        check_cmd,
        fix_cmd,
        daemon_cmd,
        service_cmd,
        migrate_cmd,
        backup_cmd,
        pending,
    ):
        module.register(app)
    return app


def _root(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(
        None,
        "--config",
        "-c",
        metavar="FILE",
        help="Configuration file "
        "(default: $ESCALE_CONFIG, then escale.toml in the user config directory).",
    ),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More output (-vv: debug)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Keep folders in sync through an untrusted passive relay storage."""
    ctx.obj = Options(config=config, verbosity=-1 if quiet else verbose)


def command_names(app: typer.Typer) -> set[str]:
    """The names of the commands and command groups registered on ``app`` so far (typer
    names an unnamed command after its function)."""
    names = {group.name for group in app.registered_groups if group.name}
    for command in app.registered_commands:
        if command.name:
            names.add(command.name)
        elif command.callback is not None:
            names.add(command.callback.__name__.lower().replace("_", "-"))
    return names


def _takes_value(option: str) -> bool:
    """Whether the root option ``option`` takes the next argument as its value: ``--config``,
    ``-c``, ``-vc`` (but ``-cFILE`` holds its value)."""
    if option.startswith("--"):
        return option == "--config"
    return option.find("c") == len(option) - 1


def _command_and_flags(args: list[str]) -> tuple[Optional[str], set[str]]:
    """The command named on the command line (``None``: none) and the root options before it,
    read as click reads them (``--config=FILE``, ``-vq`` for ``-v -q``, ``--``)."""
    flags: set[str] = set()
    tokens = iter(args)
    for token in tokens:
        if token == "--":
            return next(tokens, None), flags
        if not token.startswith("-") or token == "-":
            return token, flags
        if token.startswith("--"):
            flags.add(token.split("=", 1)[0])
        else:
            flags.update(f"-{letter}" for letter in token[1:].split("c", 1)[0])
        if _takes_value(token):
            next(tokens, None)  # the option's value, which could look like a command
    return None, flags


def wants_plugin_commands(core: set[str], args: list[str]) -> bool:
    """Whether the command line needs the plugins' commands: it names a command that is not
    a core one, or shows the command list (help, or no command); ``--version`` alone does
    not, so that it never loads a plugin."""
    command, flags = _command_and_flags(args)
    if command is not None:
        return command not in core
    return "--version" not in flags or bool(flags & {"-h", "--help"})


def build_app(args: Optional[list[str]] = None) -> typer.Typer:
    """Build the application: the core commands, plus every plugin's commands when ``args``
    (the command line; ``None``: always) may need them. Loading the plugins costs most of a
    short command's start, hence only when a command could come from one."""
    app = core_app()
    if args is None or wants_plugin_commands(command_names(app), args):
        from ..plugins import get_plugins

        get_plugins().register_commands(app)
    return app
