"""The example third-party plugin, installed for real with pip, is found and usable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from escale_core.address import parse_relay_url
from escale_core.testing import OpenRelay, RelayConformance

from .conftest import RunEscale

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "escale-relay-example"


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin installed by pip into a throwaway --target folder."""
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
        cwd=build,
    )
    return target


def test_installed_example_plugin_is_listed_with_its_version(
    escale: RunEscale, example_site: Path
) -> None:
    run = escale("plugins", "list", "--json", env={"PYTHONPATH": str(example_site)})
    assert run.returncode == 0, run.stderr
    (info,) = json.loads(run.stdout)
    assert (info["name"], info["version"], info["builtin"]) == ("example", "0.2.0", False)
    assert info["distribution"] == "escale-relay-example"
    assert info["provides"]["relays"] == ["example"]
    table = escale("plugins", "list", env={"PYTHONPATH": str(example_site)}).stdout
    assert "example" in table and "0.2.0" in table


def test_example_scheme_is_accepted_by_config_check_and_hidden_when_disabled(
    escale: RunEscale, example_site: Path, tmp_path: Path
) -> None:
    config = tmp_path / "escale.toml"
    config.write_text(
        f'[s]\npath = "{tmp_path}/A"\nrelay = "example://{tmp_path}/relay"\nencryption = "plain"\n'
    )
    env = {"PYTHONPATH": str(example_site)}
    ok = escale("-c", str(config), "config", "check", env=env)
    assert ok.returncode == 0, ok.stderr
    assert f'relay = "example://{tmp_path}/relay"' in ok.stdout
    hidden = {**env, "ESCALE_DISABLE_PLUGINS": "example"}
    assert json.loads(escale("plugins", "list", "--json", env=hidden).stdout) == []
    refused = escale("-c", str(config), "config", "check", env=hidden)
    assert refused.returncode == 2 and "unknown relay scheme 'example'" in refused.stderr


def test_example_relay_stores_objects_atomically(example_site: Path, tmp_path: Path) -> None:
    sys.path.insert(0, str(example_site))
    try:
        from escale_relay_example import ExampleRelay  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(example_site))
    relay = ExampleRelay(parse_relay_url(f"example://{tmp_path}/r"))
    relay.write_bytes("a/b/obj", b"one")
    relay.write_bytes("top", b"two")
    assert relay.list() == ["a/b/obj", "top"] and relay.read_bytes("a/b/obj") == b"one"
    assert relay.exists("top") and not relay.exists("nope")
    relay.delete("top")
    relay.delete("top")  # deleting a missing object is not an error
    assert relay.list() == ["a/b/obj"]
    assert not [p for p in (tmp_path / "r").rglob(".tmp-*")]


class TestExampleRelayConformance(RelayConformance):
    """The example plugin passes the conformance suite that relay authors subclass."""

    @pytest.fixture
    def open_relay(self, example_site: Path, tmp_path: Path) -> OpenRelay:
        sys.path.insert(0, str(example_site))
        try:
            from escale_relay_example import ExampleRelay
        finally:
            sys.path.remove(str(example_site))
        address = parse_relay_url(f"example://{tmp_path}/repo")
        return lambda: ExampleRelay(address)
