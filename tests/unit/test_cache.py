"""Compiled policies are cached only when clean, under a key that any change alters."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from policylang import cache, compiler
from policylang.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "policies" / "default.policy"


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("POLICYLANG_NO_CACHE", raising=False)
    return tmp_path / "cache" / "policylang"


def _check(policy: Path, transcripts: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["check", str(policy), str(transcripts), "--jobs", "1"])
    return result.exit_code, result.stdout, result.stderr


def _modules(directory: Path) -> list[Path]:
    return sorted(directory.glob("policy-*.py")) if directory.exists() else []


def test_a_clean_policy_is_compiled_once(
    cache_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    samples = ROOT / "samples" / "conversations.jsonl"
    first = _check(DEFAULT, samples)
    assert len(_modules(cache_home)) == 1
    assert os.stat(cache_home).st_mode & 0o077 == 0

    def no_compiling(*args: object, **kwargs: object) -> object:
        raise AssertionError("compiled again")

    monkeypatch.setattr(compiler, "load_policy_and_code", no_compiling)
    assert _check(DEFAULT, samples) == first


def test_any_change_to_the_policy_compiles_again(cache_home: Path, tmp_path: Path) -> None:
    samples = ROOT / "samples" / "conversations.jsonl"
    policy = tmp_path / "p.policy"
    shutil.copy(DEFAULT, policy)
    _check(policy, samples)
    policy.write_text(policy.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    _check(policy, samples)
    assert len(_modules(cache_home)) == 2


def test_a_change_to_policylang_itself_compiles_again(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = DEFAULT.read_bytes()
    cache.store_policy_module(source, "POLICY = None\n")
    assert len(_modules(cache_home)) == 1
    monkeypatch.setattr(cache, "package_fingerprint", lambda: "another installation")
    assert cache._policy_module_path(source) != str(_modules(cache_home)[0])


def test_a_policy_with_warnings_is_not_cached(cache_home: Path, tmp_path: Path) -> None:
    policy = tmp_path / "warn.policy"
    text = DEFAULT.read_text(encoding="utf-8")
    # An unused counter is a warning (PL4xx), not an error.
    policy.write_text(text + "\ncounter never_used {\n  counts: harmful_turns\n}\n")
    _, _, stderr = _check(policy, ROOT / "samples" / "conversations.jsonl")
    assert "warning" in stderr
    assert _modules(cache_home) == []
    assert "warning" in _check(policy, ROOT / "samples" / "conversations.jsonl")[2]


def test_a_damaged_cache_entry_is_compiled_again(cache_home: Path) -> None:
    samples = ROOT / "samples" / "conversations.jsonl"
    expected = _check(DEFAULT, samples)
    (module,) = _modules(cache_home)
    module.write_text("this is not python (\n", encoding="utf-8")
    assert _check(DEFAULT, samples) == expected
    assert cache.load_cached_policy(DEFAULT.read_bytes()) is not None  # rewritten


def test_no_cache_when_turned_off(cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLICYLANG_NO_CACHE", "1")
    _check(DEFAULT, ROOT / "samples" / "conversations.jsonl")
    assert not cache_home.exists()
