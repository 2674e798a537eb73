"""The analysed grammar is cached between runs, only somewhere private, and safely."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from policylang.parser import build_parser, parser_cache_path

ROOT = Path(__file__).resolve().parents[2]
POLICY = (ROOT / "policies" / "default.policy").read_text(encoding="utf-8")


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("POLICYLANG_NO_CACHE", raising=False)
    return tmp_path


def test_a_cached_parser_parses_like_a_fresh_one(cache_home: Path) -> None:
    path = parser_cache_path()
    assert path is not None
    assert Path(path).parent == cache_home / "policylang"
    assert stat.S_IMODE((cache_home / "policylang").stat().st_mode) == 0o700
    fresh = build_parser().parse(POLICY)
    build_parser(cache=path)  # writes the cache
    assert Path(path).is_file()
    assert build_parser(cache=path).parse(POLICY) == fresh  # read from it


def test_a_corrupt_cache_file_is_rebuilt(cache_home: Path) -> None:
    path = parser_cache_path()
    assert path is not None
    Path(path).write_bytes(b"not a cache\n")
    assert build_parser(cache=path).parse(POLICY) == build_parser().parse(POLICY)


def test_a_directory_others_may_write_to_is_not_used(cache_home: Path) -> None:
    directory = cache_home / "policylang"
    directory.mkdir(mode=0o700)
    os.chmod(directory, 0o777)
    assert parser_cache_path() is None


def test_the_cache_can_be_turned_off(cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLICYLANG_NO_CACHE", "1")
    assert parser_cache_path() is None
    assert not (cache_home / "policylang").exists()


def test_an_unusable_cache_home_means_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the directory would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.delenv("POLICYLANG_NO_CACHE", raising=False)
    assert parser_cache_path() is None
