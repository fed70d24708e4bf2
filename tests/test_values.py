"""Value converters: sizes, durations, booleans, lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from escale_core.config import values as v

CTX = v.Context(base_dir=Path("/base"))


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("2GB", 2 * 10**9),
        ("200 MiB", 200 * 2**20),
        ("1.5G", 1_500_000_000),
        ("10 kib", 10240),
        ("3Mo", 3 * 10**6),
        (200, 200 * 10**6),
        (0.5, 500_000),
        ("512 B", 512),
        ("7", 7 * 10**6),
        ("1TiB", 2**40),
    ],
)
def test_sizes_accept_units_and_a_bare_number_is_megabytes(text: object, size: int) -> None:
    assert v.to_size(text, CTX) == size


@pytest.mark.parametrize("text", ["2 parsecs", "", "GB", "-1GB", 0, True, [1], "1e3MB"])
def test_bad_sizes_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="size"):
        v.to_size(text, CTX)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),
        ("90s", 90.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("3d", 259200.0),
        (True, 1800.0),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert v.to_duration(1800.0)(value, CTX) == seconds


@pytest.mark.parametrize("value", ["soon", 0, -5, False, "10 years"])
def test_bad_durations_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        v.to_duration(1800.0)(value, CTX)


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), ("yes", True), ("Off", False), ("1", True), (0, False)]
)
def test_booleans_accept_the_original_spellings(value: object, expected: bool) -> None:
    assert v.to_bool(value, CTX) is expected


def test_lists_accept_arrays_and_comma_separated_strings() -> None:
    assert v.to_str_list("a, b,,c", CTX) == ["a", "b", "c"]
    assert v.to_str_list(["a ", "b"], CTX) == ["a", "b"]
    assert v.to_extensions(".JPG, png", CTX) == ["jpg", "png"]
    assert v.to_int_list("503, 104", CTX) == [503, 104]


def test_paths_expand_home_and_are_relative_to_the_config_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", "/home/u")
    monkeypatch.setenv("DATA", "/data")
    assert v.to_path("~/x", CTX) == Path("/home/u/x")
    assert v.to_path("$DATA/x", CTX) == Path("/data/x")
    assert v.to_path("rel/x", CTX) == Path("/base/rel/x")
