"""Relay addresses, including multi-path ones, and the original parse_address."""

from __future__ import annotations

import os

import pytest

from escale_core.address import RelayAddress, parse_address, parse_relay_url

MULTI = frozenset({"gdrive", "file"})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/srv/relay", RelayAddress("file", path="/srv/relay")),
        ("file:///srv/relay", RelayAddress("file", path="/srv/relay")),
        (
            "sftp://me@example.org:2222/srv/x",
            RelayAddress("sftp", host="example.org", port=2222, username="me", path="/srv/x"),
        ),
        (
            "webdav://u:p%40ss@[::1]:8080/dav",
            RelayAddress(
                "webdav", host="::1", port=8080, username="u", password="p@ss", path="/dav"
            ),
        ),
        ("s3://bucket/prefix/x", RelayAddress("s3", host="bucket", path="/prefix/x")),
        (
            "gdrive:///mnt/drive//Escale repo",
            RelayAddress("gdrive", path="Escale repo", mount="/mnt/drive"),
        ),
        ("gdrive://Escale", RelayAddress("gdrive", path="Escale")),
        ("File:///a%20b", RelayAddress("file", path="/a b")),
    ],
)
def test_parse_relay_url(url: str, expected: RelayAddress) -> None:
    assert parse_relay_url(url, MULTI) == expected


def test_home_is_expanded_in_local_paths() -> None:
    assert parse_relay_url("~/relay").path == os.path.expanduser("~/relay")
    assert parse_relay_url("file://~/relay").path == os.path.expanduser("~/relay")


@pytest.mark.parametrize(
    "url",
    [
        "",
        "relay",
        "sftp://host:notaport/x",
        "file://relative/x",
        "s3://b/x?versioning=1",
        "/a\x00b",
    ],
)
def test_bad_addresses_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_relay_url(url, MULTI)


def test_display_masks_the_password() -> None:
    shown = parse_relay_url("sftp://me:secret@host:22/x").display()
    assert shown == "sftp://me:***@host:22/x"


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("/abs/path", (None, "/abs/path", None, None)),
        ("file:///abs/path", ("file", "/abs/path", None, None)),
        ("webdav://host:8080/rel/path", ("webdav", "host", "8080", "rel/path")),
        (
            "googledrive:///home/u/Drive//Escale repository",
            ("googledrive", "/home/u/Drive", None, "Escale repository"),
        ),
        ("googledrive://relative", ("googledrive", None, None, "relative")),
        ("googledrive", ("googledrive", None, None, None)),
    ],
)
def test_parse_address_behaves_like_the_original(addr: str, expected: tuple) -> None:
    assert parse_address(addr, ["googledrive"]) == expected
