"""``escale clients list`` and ``escale clients forget``: the clients of a section's repository
(:mod:`escale_core.ops.clients`)."""

from __future__ import annotations

import datetime
import json
import sys
from typing import TYPE_CHECKING, Optional

import typer

from ..errors import UsageError
from .output import human_size

if TYPE_CHECKING:
    from ..ops.clients import ClientInfo, ForgetPlan


def _when(timestamp: Optional[float]) -> str:
    if timestamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def _seqs(seqs: list[int]) -> str:
    """``[4, 5, 6]`` → ``"3 updates (4-6)"``."""
    span = str(seqs[0]) if len(seqs) == 1 else f"{seqs[0]}-{seqs[-1]}"
    return f"{len(seqs)} update{'s' if len(seqs) > 1 else ''} ({span})"


def _mode(info: ClientInfo) -> str:
    if info.retired is not None:
        return "retired"
    if info.pushes is None:
        return "unknown"
    return "pushes" if info.pushes else "download-only"


def _row(info: ClientInfo) -> tuple[str, ...]:
    seen = _when(info.retired.time if info.retired else info.last_seen)
    relay = f"{info.updates} / {human_size(info.bytes)}"
    holds = f"{info.holds} / {human_size(info.holds_bytes)}" if info.holds else "-"
    name = info.name + (" (this client)" if info.me else "")
    return (name, _mode(info), seen, str(info.last_seq), relay, holds)


def format_clients(infos: list[ClientInfo]) -> str:
    """A table (one row per client), then what each has not acknowledged or asked for."""
    head = ("NAME", "MODE", "LAST SEEN", "LAST SEQ", "UPDATES / SIZE", "HOLDS ONLY IT")
    rows = [head, *(_row(i) for i in infos)]
    widths = [max(len(r[c]) for r in rows) for c in range(len(head))]
    lines = ["  ".join(f"{v:<{w}}" for v, w in zip(r, widths)).rstrip() for r in rows]
    for info in infos:
        if info.retired is not None:
            stay = "; its updates stay until the others acknowledged them" if info.updates else ""
            lines.append(
                f"{info.name}: retired by {info.retired.by} on {_when(info.retired.time)}{stay}"
            )
        for other, seqs in info.pending.items():
            lines.append(f"{info.name}: has not acknowledged {_seqs(seqs)} of {other}")
        if info.want_full:
            lines.append(f"{info.name}: asked for a full update from {', '.join(info.want_full)}")
        if info.error:
            lines.append(f"{info.name}: {info.error}")
    return "\n".join(lines)


def _prompt(plan: ForgetPlan) -> bool:
    """Ask before retiring (standard input must be a terminal; otherwise --yes is needed)."""
    info = plan.info
    if not sys.stdin.isatty():
        raise UsageError(
            f"forgetting {info.name} cannot be undone: confirm with --yes (standard input is "
            "not a terminal); nothing was changed"
        )
    holds = ""
    if info.holds:
        holds = f" (it alone holds {info.holds} update(s), {human_size(info.holds_bytes)})"
    return typer.confirm(
        f"Retire client {info.name} (last seen {_when(info.last_seen)}, last update "
        f"{info.last_seq}) for good? The others stop waiting for it{holds}; it can never "
        "sync again with its current local state",
        default=False,
    )


def register(app: typer.Typer) -> None:
    """Add the ``clients`` command group to ``app``."""
    group = typer.Typer(help="The clients of a section's repository.", no_args_is_help=True)
    app.add_typer(group, name="clients")

    @group.command("list")
    def list_(
        ctx: typer.Context,
        section: str = typer.Argument(..., help="The section."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """List the clients that joined the repository: mode, last seen, last update, updates
        still on the relay, what each has not acknowledged and what waits only for it."""
        from ..config import load_config
        from ..ops.clients import list_clients
        from ..plugins import get_plugins

        config = load_config(ctx.obj.config, get_plugins())
        conf = config.section(section)
        infos = list_clients(config, conf, get_plugins())
        if as_json:
            typer.echo(json.dumps([i.as_dict() for i in infos], indent=2))
        elif infos:
            typer.echo(f"[{section}] relay {conf.address.display()}")
            typer.echo(format_clients(infos))
        else:
            typer.echo(f"[{section}] no client joined the repository yet")

    @group.command("forget")
    def forget(
        ctx: typer.Context,
        section: str = typer.Argument(..., help="The section."),
        client: str = typer.Argument(..., help="The name of the client to retire."),
        yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    ) -> None:
        """Retire a client that will never come back: what only it was waiting for (updates,
        full updates it asked for, tombstones) is freed at the next rounds of the others."""
        from ..config import load_config
        from ..ops.clients import forget_client
        from ..plugins import get_plugins

        config = load_config(ctx.obj.config, get_plugins())
        conf = config.section(section)
        confirm = (lambda plan: True) if yes else _prompt
        plan = forget_client(config, conf, get_plugins(), client, confirm)
        if plan is None:
            typer.echo(f"[{section}] nothing was changed")
            raise typer.Exit(1)
        if plan.already:
            typer.echo(
                f"[{section}] {client} was already retired (by {plan.record.by} on "
                f"{_when(plan.record.time)})"
            )
            return
        typer.echo(
            f"[{section}] retired {client}: the next rounds of the other clients collect what "
            "waited only for it; its own updates stay until they acknowledged them"
        )
