"""Fixtures for the ``policylang test`` tests: a small policy in a temporary folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from testing_helpers import SMALL


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("POLICYLANG_DEBUG", raising=False)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A folder holding ``small.policy``; test files are written beside it."""
    shutil.copy(SMALL, tmp_path / "small.policy")
    return tmp_path
