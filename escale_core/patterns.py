"""The filter pattern convention: a wildcard, or a regular expression between slashes.

``*.jpg`` is a shell wildcard (``*``, ``?``, ``[abc]``) matched against the **whole** name, so it
does not accept ``a.jpg.bak`` (the original Escale anchored wildcards at the start only).
``/^raw_[0-9]+\\.dng$/`` is a Python regular expression searched in the name; the closing slash
is optional, as in the original.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    """One compiled filter pattern.

    :param source: the pattern as written.
    :param regex: the compiled expression.
    :param is_regex: written as ``/regex/`` (searched) rather than as a wildcard (full match).
    """

    source: str
    regex: re.Pattern[str]
    is_regex: bool

    def matches(self, name: str) -> bool:
        """Whether ``name`` matches this pattern."""
        if self.is_regex:
            return self.regex.search(name) is not None
        return self.regex.fullmatch(name) is not None

    def __str__(self) -> str:
        return self.source


def compile_pattern(text: str) -> Pattern:
    """Compile one pattern.

    :raises ValueError: empty pattern or invalid regular expression.
    """
    if not text:
        raise ValueError("empty pattern")
    if text.startswith("/"):
        body = text[1:-1] if len(text) > 1 and text.endswith("/") else text[1:]
        if not body:
            raise ValueError(f"empty regular expression in {text!r}")
        try:
            return Pattern(text, re.compile(body), True)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {text!r}: {exc}") from None
    # fnmatch.translate anchors at the end; fullmatch anchors the start.
    return Pattern(text, re.compile(fnmatch.translate(text)), False)


def matches_any(patterns: Iterable[Pattern], name: str) -> bool:
    """Whether any of ``patterns`` matches ``name``."""
    return any(p.matches(name) for p in patterns)
