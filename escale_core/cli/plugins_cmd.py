"""``escale plugins list``: which plugins are installed and what each provides."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from ..plugins import PluginInfo

_KINDS = ("relays", "ciphers", "checksums", "commands")


def register(app: typer.Typer) -> None:
    """Add the ``plugins`` command group to ``app``."""
    group = typer.Typer(help="Inspect installed plugins.", no_args_is_help=True)
    app.add_typer(group, name="plugins")

    @group.command("list")
    def list_plugins(
        all_: bool = typer.Option(False, "--all", "-a", help="Include the built-in plugins."),
        as_json: bool = typer.Option(False, "--json", help="Print a JSON list."),
    ) -> None:
        """List installed plugins: name, version, what each provides, the hooks it implements."""
        from ..plugins import get_plugins
        from .app import build_app

        build_app()  # plugins' commands are added (and credited) only when asked for: now
        infos = get_plugins().describe(include_builtins=all_)
        if as_json:
            typer.echo(json.dumps([_as_json(i) for i in infos], indent=2))
        elif not infos:
            typer.echo("No external plugins installed (--all lists the built-in ones).")
        else:
            typer.echo(format_table(infos))


def _as_json(info: PluginInfo) -> dict[str, object]:
    data = info.as_dict()
    data["provides"] = {kind: info.provides.get(kind, []) for kind in _KINDS}
    return data


def _provides(info: PluginInfo) -> str:
    parts = []
    for kind in _KINDS:
        names = [n + "*" if n in info.untested else n for n in info.provides.get(kind, [])]
        if names:
            parts.append(f"{kind}: {', '.join(names)}")
    return "; ".join(parts) or "-"


def format_table(infos: list[PluginInfo]) -> str:
    """A plain-text table: name, version, built-in or not, provides, hooks."""
    rows = [("NAME", "VERSION", "TYPE", "HOOKS", "PROVIDES")]
    for info in infos:
        kind = "built-in" if info.builtin else "external"
        rows.append((info.name, info.version, kind, ", ".join(info.hooks), _provides(info)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4] for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines + relay_notes(infos))


def relay_notes(infos: list[PluginInfo]) -> list[str]:
    """The lines under the table: what the relays were verified against, and which were not
    tested here and why (relays with the same text share a line)."""
    verified: dict[str, list[str]] = {}
    untested: dict[str, list[str]] = {}
    for info in infos:
        for name, servers in info.verified.items():
            verified.setdefault(", ".join(servers), []).append(name)
        for name, reason in info.untested.items():
            untested.setdefault(reason, []).append(name)
    lines = []
    if verified:
        lines += ["", "relays verified against:"]
        lines += [f"  {', '.join(names)}: {text}" for text, names in verified.items()]
    if untested:
        lines += ["", "* not tested here:"]
        lines += [f"  {', '.join(names)}: {text}" for text, names in untested.items()]
    return lines
