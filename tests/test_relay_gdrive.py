"""Google Drive through gdrive-fsspec (``gdrive://``): what can be tested without a Google
account or a network. A section without credentials, a missing service account key, a key
whose token cannot be had: each is one line naming the relay and how to fix it, never a browser
opened nor "internal error". ``escale plugins list`` marks the relay as not tested. The mounted
form (``gdrive:///mount//folder``) is a plain folder, and three real clients converge through it.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .clients import Cluster, converge, same_tree
from .conftest import RunEscale

needs_gdrive = pytest.mark.skipif(
    importlib.util.find_spec("gdrive_fsspec") is None,
    reason="gdrive-fsspec is not installed (pip install -e '.[test]')",
)


def section(write_config, relay_options: str = "") -> Path:  # type: ignore[no-untyped-def]
    return write_config(
        """
        [drive]
        path = "{tmp}/folder"
        relay = "gdrive://Escale/photos"
        encryption = "plain"
        """
        + relay_options
    )


def one_error_line(run) -> str:  # type: ignore[no-untyped-def]
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "internal error" not in lines[0]
    return str(lines[0])


@needs_gdrive
def test_a_section_without_google_credentials_says_how_to_give_them_and_opens_no_browser(
    escale: RunEscale, write_config
) -> None:  # type: ignore[no-untyped-def]
    config = section(write_config)
    run = escale("-c", str(config), "sync", "drive", env={"BROWSER": "/bin/false"})
    assert run.returncode == 1
    line = one_error_line(run)
    assert "gdrive:///Escale/photos" in line and "no Google credentials" in line, line
    assert "service_account_file" in line and "rclone://" in line, line


@needs_gdrive
def test_a_missing_service_account_key_names_the_option(escale: RunEscale, write_config) -> None:  # type: ignore[no-untyped-def]
    config = section(
        write_config, '[drive.relay_options]\nservice_account_file = "{tmp}/nowhere.json"\n'
    )
    run = escale("-c", str(config), "sync", "drive")
    assert run.returncode == 2
    line = one_error_line(run)
    assert "relay_options.service_account_file" in line and "nowhere.json" in line, line


@needs_gdrive
def test_a_service_account_whose_token_cannot_be_had_is_one_line(
    escale: RunEscale, write_config, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The key is well formed; its token endpoint (on this machine, closed) refuses: one line,
    exit 1, and nothing is written locally."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    account = tmp_path / "account.json"
    account.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "escale-test",
                "private_key_id": "0" * 40,
                "private_key": pem,
                "client_email": "relay@escale-test.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "http://127.0.0.1:1/token",
            }
        )
    )
    config = section(write_config, f'[drive.relay_options]\nservice_account_file = "{account}"\n')
    run = escale("-c", str(config), "sync", "drive", timeout=120)
    assert run.returncode == 1, run
    line = one_error_line(run)
    assert "gdrive:///Escale/photos" in line and "cannot be reached" in line, line


def test_plugins_list_says_gdrive_is_verified_mounted_and_not_tested_against_google(
    escale: RunEscale,
) -> None:
    table = escale("plugins", "list", "--all")
    assert table.returncode == 0
    assert "gdrive*" in table.stdout and "file*" not in table.stdout
    notes = table.stdout.split("* not tested here:")[1].splitlines()
    (gdrive,) = [line for line in notes if line.startswith("  gdrive: ")]
    assert "needs a Google account" in gdrive and "rclone://" in gdrive
    verified = table.stdout.split("relays verified against:")[1].split("* not tested")[0]
    assert "  gdrive: a Drive folder mounted locally" in verified
    listed = json.loads(escale("plugins", "list", "--all", "--json").stdout)
    untested = {k: v for info in listed for k, v in info["untested"].items()}
    assert "Google account" in untested["gdrive"]
    assert "sftp" not in untested and "file" not in untested
    tested = {k: v for info in listed for k, v in info["verified"].items()}
    assert tested["sftp"] and tested["webdav"] and tested["ftp"] and tested["s3"]


def test_three_clients_converge_through_a_mounted_drive_folder(
    tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    mount = tmp_path / "GoogleDrive"
    mount.mkdir()
    cluster = Cluster(tmp_path / "clients", f"gdrive://{mount}//Escale repo", isolated_env)
    a, b, c = (cluster.add(n) for n in ("a", "b", "c"))
    a.write("photos/one.jpg", b"1" * 5000)
    b.write("notes.txt", b"from b")
    converge([a, b, c])
    assert same_tree(a.root, b.root) and same_tree(a.root, c.root)
    assert (c.root / "photos/one.jpg").read_bytes() == b"1" * 5000
    assert (mount / "Escale repo" / "escale.json").exists()


@pytest.mark.parametrize(
    "url",
    ["gdrive://Escale/photos", "gdrive://root/Escale/photos", "gdrive:///Escale/photos"],
)
def test_gdrive_addresses_name_a_folder_of_my_drive_and_root_is_its_top(url: str) -> None:
    from escale_relay_fsspec.gdrive import drive_path

    from escale_core.address import parse_relay_url

    assert drive_path(parse_relay_url(url, frozenset({"gdrive"}))) == "Escale/photos"


@needs_gdrive
@pytest.mark.parametrize(
    ("relay", "options", "expected"),
    [
        ("gdrive://root", "", "names no folder of the Drive"),
        ("gdrive:///home/me/GoogleDrive/Escale", "", "gdrive:///MOUNT//FOLDER"),
        ("gdrive://Escale", 'token = "anon"', "relay_options.token: 'anon' is not one of"),
        ("gdrive://Escale", 'token = "service_account"', "relay_options.service_account_file"),
    ],
)
def test_a_wrong_gdrive_address_or_token_is_one_line_before_any_request(
    escale: RunEscale, write_config, relay: str, options: str, expected: str
) -> None:  # type: ignore[no-untyped-def]
    config = write_config(
        f"""
        [drive]
        path = "{{tmp}}/folder"
        relay = "{relay}"
        encryption = "plain"
        [drive.relay_options]
        {options}
        """
    )
    run = escale("-c", str(config), "sync", "drive", env={"BROWSER": "/bin/false"})
    assert run.returncode == 2, run
    assert expected in one_error_line(run)


def hide_gdrive_fsspec(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import gdrive_fsspec`` fails as if it were not installed
    (``sys.modules[name] = None`` makes both ``find_spec`` and ``import`` say so)."""
    site = tmp_path / "hide"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['gdrive_fsspec'] = None\n")
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def test_without_gdrive_fsspec_the_error_gives_the_pip_command_and_mounts_still_work(
    escale: RunEscale, write_config, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    hidden = hide_gdrive_fsspec(tmp_path)
    run = escale("-c", str(section(write_config)), "sync", "drive", env=hidden)
    assert run.returncode != 0
    line = one_error_line(run)
    assert "gdrive" in line and "pip install 'escale[gdrive]'" in line, line
    mount = tmp_path / "GoogleDrive"
    mount.mkdir()
    (tmp_path / "mounted").mkdir()
    (tmp_path / "mounted" / "a.txt").write_text("through the mount")
    config = write_config(
        f"""
        [drive]
        path = "{tmp_path}/mounted"
        relay = "gdrive://{mount}//Escale repo"
        encryption = "plain"
        """
    )
    done = escale("-c", str(config), "sync", "drive", env=hidden)
    assert done.returncode == 0, done.stderr
    assert (mount / "Escale repo" / "escale.json").exists()


class TokenEndpoint(http.server.BaseHTTPRequestHandler):
    """Google's OAuth token endpoint as a local server: answers every refresh with
    ``self.server.answer`` (status, JSON body) and counts the requests."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, body = self.server.answer  # type: ignore[attr-defined]
        self.server.requests += 1  # type: ignore[attr-defined]
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def token_endpoint() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), TokenEndpoint)
    server.requests = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def cache_user_credentials(home: Path, endpoint: http.server.HTTPServer) -> Path:
    """What one ``token = "browser"`` run leaves in pydata-google-auth's cache, refreshed at
    ``endpoint`` instead of Google."""
    cache = home / ".config" / "pydata" / "pydata_google_credentials.json"
    cache.parent.mkdir(parents=True)
    host, port = endpoint.server_address[:2]
    cache.write_text(
        json.dumps(
            {
                "refresh_token": "1//refresh",
                "client_id": "escale-test.apps.googleusercontent.com",
                "client_secret": "secret",
                "token_uri": f"http://{host}:{port}/token",
                "scopes": ["https://www.googleapis.com/auth/drive"],
            }
        )
    )
    return cache


@needs_gdrive
def test_cached_credentials_google_refuses_are_one_line_and_never_a_browser(
    escale: RunEscale, write_config, isolated_env: dict[str, str], token_endpoint
) -> None:  # type: ignore[no-untyped-def]
    """Revoked credentials: pydata-google-auth alone would start the browser flow."""
    token_endpoint.answer = (400, {"error": "invalid_grant", "error_description": "revoked"})
    cache = cache_user_credentials(Path(isolated_env["HOME"]), token_endpoint)
    run = escale("-c", str(section(write_config)), "sync", "drive", env={"BROWSER": "/bin/false"})
    assert run.returncode == 1
    line = one_error_line(run)
    assert f"cached in {cache} cannot be used" in line and 'token = "browser"' in line, line
    assert token_endpoint.requests == 1


@needs_gdrive
def test_usable_cached_credentials_without_network_to_google_are_unavailable_not_a_browser(
    escale: RunEscale, write_config, isolated_env: dict[str, str], token_endpoint
) -> None:  # type: ignore[no-untyped-def]
    """The token is had (locally); the Drive API (www.googleapis.com) cannot be reached from
    the test machine: one line, exit 1, nothing written locally."""
    token_endpoint.answer = (200, {"access_token": "ya29.test", "expires_in": 3600})
    cache_user_credentials(Path(isolated_env["HOME"]), token_endpoint)
    config = section(write_config)
    run = escale("-c", str(config), "sync", "drive", env={"BROWSER": "/bin/false"}, timeout=120)
    assert run.returncode == 1, run
    line = one_error_line(run)
    assert "gdrive:///Escale/photos" in line and "cannot be reached" in line, line
    assert token_endpoint.requests >= 1
    assert not (config.parent / "folder").exists() or not any((config.parent / "folder").iterdir())
