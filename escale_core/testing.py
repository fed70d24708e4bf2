"""A conformance suite for relays, to subclass in a relay plugin's tests (as fsspec's
``tests/abstract``).

::

    from escale_core.testing import RelayConformance

    class TestMyRelay(RelayConformance):
        @pytest.fixture
        def open_relay(self, my_server):
            return lambda: MyRelay(parse_relay_url(my_server.url_for_a_fresh_root))

``open_relay`` returns a callable that opens a new relay instance on one fresh, empty repository
folder (each call a new instance on the same folder, as two clients would be). Every test
states a rule of the relay contract that the sync engine relies on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Callable

import pytest

from .errors import RelayNotFoundError
from .relay import Relay

OpenRelay = Callable[[], Relay]


class RelayConformance:
    """The relay contract, as tests."""

    @pytest.fixture
    def open_relay(self) -> OpenRelay:
        """Override: a callable opening a relay on a fresh, empty repository folder."""
        raise NotImplementedError("define the open_relay fixture")

    @pytest.fixture
    def relay(self, open_relay: OpenRelay) -> Iterator[Relay]:
        """One relay instance."""
        instance = open_relay()
        yield instance
        instance.close()

    def test_a_new_repository_lists_nothing(self, relay: Relay) -> None:
        assert relay.list() == [] and relay.list_sizes() == {}

    def test_written_objects_read_back_byte_identical(self, relay: Relay) -> None:
        relay.write_bytes("header", b"\x00\x01 header \xff")
        relay.write_bytes("empty", b"")
        assert relay.read_bytes("header") == b"\x00\x01 header \xff"
        assert relay.read_bytes("empty") == b""

    def test_listing_is_recursive_sorted_relative_and_sized(self, relay: Relay) -> None:
        relay.write_bytes("updates/c2/0000000002", b"22")
        relay.write_bytes("updates/c1/0000000001", b"1")
        relay.write_bytes("data/c1/0000000001/000000", b"333")
        assert relay.list() == [
            "data/c1/0000000001/000000",
            "updates/c1/0000000001",
            "updates/c2/0000000002",
        ]
        assert relay.list("updates") == ["updates/c1/0000000001", "updates/c2/0000000002"]
        assert relay.list_sizes("updates/c2") == {"updates/c2/0000000002": 2}
        assert relay.list("nothing/here") == []

    def test_overwriting_replaces_the_whole_object(self, relay: Relay) -> None:
        relay.write_bytes("clients/a", b"a much longer first version")
        relay.write_bytes("clients/a", b"short")
        assert relay.read_bytes("clients/a") == b"short"
        assert relay.list() == ["clients/a"]

    def test_streams_round_trip_in_pieces(self, relay: Relay) -> None:
        pieces = [bytes([i]) * 65536 for i in range(48)]  # 3 MiB
        relay.write_stream("data/big", iter(pieces))
        assert b"".join(relay.read_stream("data/big")) == b"".join(pieces)
        assert relay.list_sizes() == {"data/big": 3 << 20}

    def test_a_failed_write_leaves_nothing_visible(self, relay: Relay) -> None:
        def failing() -> Iterator[bytes]:
            yield b"x" * 100_000
            raise RuntimeError("connection lost")

        relay.write_bytes("data/kept", b"old")
        with pytest.raises(RuntimeError):
            relay.write_stream("data/new", failing())
        with pytest.raises(RuntimeError):
            relay.write_stream("data/kept", failing())
        assert relay.list() == ["data/kept"]
        assert relay.read_bytes("data/kept") == b"old"

    def test_reading_a_missing_object_is_relay_not_found(self, relay: Relay) -> None:
        with pytest.raises(RelayNotFoundError):
            relay.read_bytes("updates/none")
        with pytest.raises(RelayNotFoundError):
            b"".join(relay.read_stream("updates/none"))

    def test_deleting_is_idempotent(self, relay: Relay) -> None:
        relay.write_bytes("a/b", b"1")
        relay.delete("a/b")
        relay.delete("a/b")
        relay.delete("never/existed")
        assert relay.list() == [] and not relay.exists("a/b")

    def test_exclusive_create_succeeds_once(self, relay: Relay) -> None:
        assert relay.create_exclusive("escale.json", b"first")
        assert not relay.create_exclusive("escale.json", b"second")
        assert relay.read_bytes("escale.json") == b"first"

    def test_another_client_sees_writes_and_deletions_at_once(
        self, relay: Relay, open_relay: OpenRelay
    ) -> None:
        other = open_relay()
        try:
            assert other.list() == []
            relay.write_bytes("updates/c/0000000001", b"1")
            assert other.list() == ["updates/c/0000000001"]  # no stale listing cache
            relay.delete("updates/c/0000000001")
            assert other.list() == [] and not other.exists("updates/c/0000000001")
        finally:
            other.close()
