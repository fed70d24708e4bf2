"""``escale versions list`` and ``restore``: the previous versions kept in ``.escale/versions``.

PATH is a path inside the section's local folder (``docs/report.txt``); an absolute path inside
that folder is accepted too. The versions themselves are described in :mod:`escale_core.versions`.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import posixpath
from typing import TYPE_CHECKING, Optional

import typer

from ..errors import UsageError
from .output import human_size

if TYPE_CHECKING:
    from ..config import SectionConfig
    from ..versions import StoredVersion

_TIME_HINT = 'write 2026-12-04T10:00, "2026-12-04 10:00:00" or Unix seconds'


def parse_time(text: str) -> float:
    """``--at``: an ISO date and time (local time unless it names an offset), or Unix seconds.

    :raises UsageError: anything else.
    """
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise UsageError(f"--at: {text!r} is not a time; {_TIME_HINT}")
        return seconds
    try:
        return datetime.datetime.fromisoformat(value).timestamp()  # naive = local time
    except (ValueError, OverflowError, OSError):
        raise UsageError(f"--at: cannot read {text!r} as a time; {_TIME_HINT}") from None


def section_path(section: SectionConfig, text: str) -> str:
    """PATH as a ``/``-separated path inside the section's folder (``""`` for the folder itself).

    :raises UsageError: the path leaves the folder.
    """
    if os.path.isabs(text):
        target = os.path.abspath(text)
        for root in (os.path.abspath(section.path), os.path.realpath(section.path)):
            rel = os.path.relpath(target, root)
            if rel != ".." and not rel.startswith(".." + os.sep):
                break
        else:
            raise UsageError(f"{text} is not inside [{section.name}] {section.path}")
    else:
        rel = text
    rel = posixpath.normpath(rel.replace(os.sep, "/"))
    if rel == ".." or rel.startswith("../"):
        raise UsageError(f"{text} is not inside [{section.name}] {section.path}")
    return "" if rel == "." else rel


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def format_versions(versions: list[StoredVersion]) -> str:
    """A table: path, time kept (local time), size."""
    rows = [(v.relpath, _when(v.time), human_size(v.size)) for v in versions]
    width = max([len("PATH"), *(len(r[0]) for r in rows)])
    lines = [f"{'PATH':<{width}}  {'TIME':<19}  SIZE"]
    lines += [f"{path:<{width}}  {when}  {size}" for path, when, size in rows]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add the ``versions`` command group to ``app``."""
    group = typer.Typer(
        help="Previous versions of local files, kept in .escale/versions.", no_args_is_help=True
    )
    app.add_typer(group, name="versions")

    @group.command("list")
    def list_(
        ctx: typer.Context,
        section: str = typer.Argument(..., help="The section."),
        path: Optional[str] = typer.Argument(
            None, help="Only this file, or the files below this folder (inside the section)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """List the kept versions: path, time kept (local time), size."""
        from ..config import load_config
        from ..plugins import get_plugins
        from ..versions import list_versions

        conf = load_config(ctx.obj.config, get_plugins()).section(section)
        rel = section_path(conf, path) if path is not None else ""
        found = list_versions(conf.path, rel or None)
        if as_json:
            out = [
                {
                    "path": v.relpath,
                    "time": v.time,
                    "local_time": datetime.datetime.fromtimestamp(v.time).isoformat(),
                    "size": v.size,
                    "file": str(v.path),
                }
                for v in found
            ]
            typer.echo(json.dumps(out, indent=2))
        elif found:
            typer.echo(format_versions(found))
        else:
            typer.echo(f"[{section}] no previous versions" + (f" of {rel}" if rel else ""))

    @group.command("restore")
    def restore(
        ctx: typer.Context,
        section: str = typer.Argument(..., help="The section."),
        path: str = typer.Argument(..., help="The file to bring back (inside the section)."),
        at: Optional[str] = typer.Option(
            None,
            "--at",
            metavar="TIME",
            help="The newest version kept at or before TIME (2026-12-04T10:00, Unix seconds).",
        ),
    ) -> None:
        """Bring a file back: its newest kept version, or the one at --at TIME.

        A current file is kept as a version first, so nothing is lost.
        """
        from ..config import load_config
        from ..plugins import get_plugins
        from ..versions import restore_version

        conf = load_config(ctx.obj.config, get_plugins()).section(section)
        rel = section_path(conf, path)
        if not rel:
            raise UsageError(f"name a file inside [{section}] {conf.path}, not the folder")
        when = parse_time(at) if at is not None else None
        existed = os.path.lexists(conf.path / rel)
        version = restore_version(conf.path, rel, when, conf.versions_policy)
        kept = "; the file it replaced is kept as a version" if existed else ""
        typer.echo(
            f"[{section}] restored {rel} from the version of {_when(version.time)} "
            f"({human_size(version.size)}){kept}"
        )
