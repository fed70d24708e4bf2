"""``escale demo``: two folders synced through a local relay, encrypted, no configuration."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

FILES_A: dict[str, Optional[str]] = {
    "notes/todo.txt": "buy milk\n",
    "photos/cat.jpg": None,
    "readme.md": "# shared\n",
}
FILES_B: dict[str, Optional[str]] = {"from-b/hello.txt": "hello from B\n"}


def _write(root: Path, files: dict[str, Optional[str]]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode() if text is not None else os.urandom(200_000))


def _trees_equal(a: Path, b: Path) -> bool:
    import filecmp

    # .escale holds each side's own previous versions: never synced, so never compared
    cmp = filecmp.dircmp(a, b, ignore=[".escale"])
    if cmp.left_only or cmp.right_only or cmp.diff_files or cmp.funny_files:
        return False
    return all(_trees_equal(a / d, b / d) for d in cmp.common_dirs)


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""

    @app.command()
    def demo(keep: bool = typer.Option(False, "--keep", help="Keep the demo folders.")) -> None:
        """Sync two local folders through a local relay, encrypted, no configuration needed."""
        import secrets
        import tempfile

        from ..config import parse_config
        from ..plugins import get_plugins
        from ..session import sync_section
        from .output import summary

        base = Path(tempfile.mkdtemp(prefix="escale-demo-"))
        key = base / "demo.key"
        key.write_text(secrets.token_urlsafe(24) + "\n")
        key.chmod(0o600)
        text = "".join(
            f'[{name}]\npath = "{base / name}"\nrelay = "{base / "relay"}"\n'
            f'client = "{name}"\npassphrase_file = "{key}"\n'
            for name in ("laptop", "server")
        )
        (base / "escale.toml").write_text(f'state_dir = "{base / "state"}"\n{text}')
        plugins = get_plugins()
        config = parse_config((base / "escale.toml").read_text(), base / "escale.toml", plugins)
        _write(base / "laptop", FILES_A)
        _write(base / "server", FILES_B)
        typer.echo(f"demo folder: {base}")
        typer.echo(
            f"  laptop/ has {len(FILES_A)} files, server/ has {len(FILES_B)}; "
            "relay/ is the shared relay (aes-256-gcm)"
        )
        for step, name in enumerate(("laptop", "server", "laptop"), start=1):
            report = sync_section(config, config.section(name), plugins)
            typer.echo(f"round {step}: {summary(name, report)}")
        (base / "laptop" / "readme.md").write_text("# shared\nedited on the laptop\n")
        (base / "server" / "from-b" / "hello.txt").unlink()
        typer.echo("laptop edits readme.md; server deletes from-b/hello.txt")
        for step, name in enumerate(("laptop", "server", "laptop", "server"), start=4):
            report = sync_section(config, config.section(name), plugins)
            typer.echo(f"round {step}: {summary(name, report)}")
        relay_names = sorted(p.name for p in (base / "relay").rglob("*") if p.is_file())
        typer.echo(f"the relay holds {len(relay_names)} opaque objects, no file names or contents")
        same = _trees_equal(base / "laptop", base / "server")
        typer.echo("laptop/ and server/ are identical" if same else "laptop/ and server/ DIFFER")
        if not keep:
            import shutil

            shutil.rmtree(base)
        raise typer.Exit(0 if same else 1)
