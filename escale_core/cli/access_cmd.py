"""``escale access``: per-file permissions, as the original's ``escalectl access``.

``r`` (readable) = may be uploaded; ``w`` (writable) = may be created or overwritten by a
download. Each is ``+`` allowed, ``-`` forbidden or ``?`` unset (the default applies).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from ..errors import UsageError

if TYPE_CHECKING:
    from ..config import Config, SectionConfig

_MODS = re.compile(r"^(?:[rw][+?-]?)+$")
_SYMBOL = {True: "+", False: "-", None: "?"}
_VALUE = {"+": True, "-": False, "?": None, "": True}


def parse_modifiers(text: str) -> dict[str, Optional[bool]]:
    """``"r-w+"`` → ``{"r": False, "w": True}``; ``"rw"`` means ``r+w+``.

    :raises UsageError: anything else.
    """
    if not _MODS.match(text):
        raise UsageError(
            f"invalid access modifiers {text!r}: use r and w, each followed by "
            "+ (allow), - (forbid) or ? (unset), e.g. r-w+"
        )
    return {m.group(1): _VALUE[m.group(2)] for m in re.finditer(r"([rw])([+?-]?)", text)}


def _find_section(config: Config, file: Path, name: Optional[str]) -> SectionConfig:
    if name is not None:
        return config.section(name)
    for section in config.sections.values():
        if section.path.resolve() in file.parents:
            return section
    raise UsageError(f"{file} is in no section's folder; name the section with -s")


def register(app: typer.Typer) -> None:
    """Add ``access`` to ``app``."""

    @app.command()
    def access(
        ctx: typer.Context,
        file: Path = typer.Argument(..., help="A file of a section's local folder."),
        mods: Optional[str] = typer.Argument(None, help="r+ r- r? w+ w- w? (e.g. r-w+, rw)."),
        section_name: Optional[str] = typer.Option(None, "--section", "-s", help="The section."),
    ) -> None:
        """Show or set per-file permissions (read = may upload, write = may be overwritten)."""
        from ..config import load_config
        from ..history import LocalState
        from ..plugins import get_plugins
        from ..session import section_state_dir

        config = load_config(ctx.obj.config, get_plugins())
        path = file.expanduser().absolute()
        section = _find_section(config, path, section_name)
        root = section.path.resolve()
        try:
            rel = path.resolve().relative_to(root).as_posix()
        except ValueError:
            raise UsageError(f"{file} is not inside [{section.name}] {root}") from None
        if not path.is_file():
            raise UsageError(f"{file} is not a file of [{section.name}]")
        state = LocalState(section.name, section_state_dir(config))
        try:
            readable, writable = state.get_access(rel)
            if mods is not None:
                changes = parse_modifiers(mods)
                readable = changes.get("r", readable) if "r" in changes else readable
                writable = changes.get("w", writable) if "w" in changes else writable
                state.set_access(rel, readable, writable)
            typer.echo(f"r{_SYMBOL[readable]}w{_SYMBOL[writable]} {rel}")
        finally:
            state.close()
