"""The documentation covers every configuration key, hook and command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from escale_core import hookspecs
from escale_core.config import GLOBAL_OPTIONS, SECTION_OPTIONS

DOCS = Path(__file__).resolve().parent.parent / "docs"
HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("register_"))


@pytest.mark.parametrize("key", [o.name for o in SECTION_OPTIONS + GLOBAL_OPTIONS])
def test_every_config_key_is_documented(key: str) -> None:
    text = (DOCS / "config.md").read_text(encoding="utf-8")
    assert re.search(rf"^\|\s*`{key}`\s*\|", text, re.MULTILINE), f"{key} missing in docs/config.md"


def test_the_four_hooks_are_the_ones_documented() -> None:
    assert HOOKS == [
        "register_checksums",
        "register_ciphers",
        "register_commands",
        "register_relays",
    ]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook: str) -> None:
    assert f"`{hook}" in (DOCS / "plugins.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "command",
    [
        "sync",
        "status",
        "start",
        "stop",
        "restart",
        "service install",
        "service uninstall",
        "plugins list",
        "access",
        "init",
        "config check",
        "config import",
        "relay check",
        "key passwd",
        "migrate",
        "backup",
        "restore",
        "fix",
        "demo",
    ],
)
def test_every_command_is_documented(command: str) -> None:
    assert f"escale {command}" in (DOCS / "cli.md").read_text(encoding="utf-8")
