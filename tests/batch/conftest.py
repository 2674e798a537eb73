"""Fixtures for the batch library tests."""

from __future__ import annotations

import pytest
from batch_helpers import POLICY

from policylang.compiler import load_policy
from policylang.diagnostics import DiagnosticSink
from policylang.runtime import Policy


@pytest.fixture(scope="session")
def policy() -> Policy:
    """The CLI tests' clean policy, compiled."""
    loaded = load_policy(str(POLICY), DiagnosticSink())
    assert loaded is not None
    return loaded
