"""The pattern convention: wildcards match the whole name; /regex/ is searched."""

from __future__ import annotations

import pytest

from escale_core.patterns import compile_pattern, matches_any


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("*.txt", "a.txt", True),
        ("*.txt", "a.txt.bak", False),  # the original matched this: start-anchored only
        ("*.txt", "xa.txt", True),
        ("a?c", "abc", True),
        ("a.c", "abc", False),  # '.' is literal in a wildcard
        ("[ab]*", "beta", True),
        ("/^raw_[0-9]+\\.dng$/", "raw_12.dng", True),
        ("/^raw_[0-9]+\\.dng$/", "raw_12.dng.xmp", False),
        ("/tmp", "my_tmp_file", True),  # closing slash optional; searched
        ("/\\.bak$/", "x.bak", True),
    ],
)
def test_pattern_matching(pattern: str, name: str, matches: bool) -> None:
    assert compile_pattern(pattern).matches(name) is matches


@pytest.mark.parametrize("pattern", ["", "/", "//", "/(unclosed/", "/[a-/"])
def test_invalid_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError):
        compile_pattern(pattern)


def test_matches_any() -> None:
    patterns = [compile_pattern("*.jpg"), compile_pattern("/^IMG/")]
    assert matches_any(patterns, "IMG_1.png") and matches_any(patterns, "x.jpg")
    assert not matches_any(patterns, "x.png")
