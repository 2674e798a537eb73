"""Fuzz: arbitrary text, bytes and terminal streams give diagnostics, never a crash.

Each property feeds its input to ``analyze`` and ``format_source`` through
:func:`fuzz_helpers.check_bytes`, which checks every invariant (see its module).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_helpers import check_all, check_bytes
from fuzz_strategies import FUZZ, awkward_text, fuzz_settings, token_stream
from hypothesis import given
from hypothesis import strategies as st

from policylang.source import SourceFile


@pytest.fixture(scope="module")
def where(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake policy path in an empty folder (so `extends` finds nothing by accident)."""
    return tmp_path_factory.mktemp("fuzz-text") / "fuzz.policy"


@fuzz_settings(scale=3)
@given(text=st.text())
def test_arbitrary_text(where: Path, text: str) -> None:
    check_bytes(str(where), text.encode("utf-8"))


@fuzz_settings(scale=3)
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes(where: Path, data: bytes) -> None:
    check_bytes(str(where), data)


@FUZZ
@given(text=st.text(st.characters(codec=None, exclude_categories=())))
def test_lone_surrogates_through_bytes(where: Path, text: str) -> None:
    # Lone surrogates (category Cs) are not UTF-8: encoded with surrogatepass they are
    # invalid bytes that must become one PL001, with the rest still checked.
    check_bytes(str(where), text.encode("utf-8", "surrogatepass"))


@fuzz_settings(scale=3)
@given(text=awkward_text)
def test_awkward_characters(where: Path, text: str) -> None:
    check_bytes(str(where), text.encode("utf-8"))


@FUZZ
@given(text=awkward_text, bom=st.booleans())
def test_awkward_characters_as_text(where: Path, text: str, bom: bool) -> None:
    # The library entry point for text that never was bytes (a BOM is dropped silently).
    check_all(SourceFile.from_text(str(where), ("\ufeff" if bom else "") + text))


@fuzz_settings(scale=4)
@given(text=token_stream())
def test_token_streams(where: Path, text: str) -> None:
    check_bytes(str(where), text.encode("utf-8"))


@fuzz_settings(scale=0.25)
@given(
    filler=st.sampled_from(["a", "é", "\u202e", "\x00", " ", "(", "[", "{", "not ", '"', "#"]),
    size=st.integers(1_000, 20_000),
    context=st.sampled_from(
        [
            "{}",
            "policy p {{ description: {} }}",
            'policy p {{ description: "{}" }}',
            "# {}\npolicy p {{ }}",
            "list {} = []",
            "pattern p = /{}/",
            "signal s {{ detect: {}a }}",
        ]
    ),
)
def test_very_long_lines(where: Path, filler: str, size: int, context: str) -> None:
    check_bytes(str(where), context.format(filler * size).encode("utf-8"))
