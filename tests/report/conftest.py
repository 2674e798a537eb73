"""Shared fixtures for the report tests: the fixture policy, corpora and labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from policylang.compiler import load_policy
from policylang.diagnostics import DiagnosticSink
from policylang.report import Report, build_report
from policylang.runtime import Policy

FIXTURES = Path(__file__).parent / "fixtures"
POLICY = FIXTURES / "report.policy"
CORPUS = FIXTURES / "corpus.jsonl"
BENIGN = FIXTURES / "benign.jsonl"
GOLD = FIXTURES / "gold" / "corpus.jsonl"


@pytest.fixture(scope="session")
def policy() -> Policy:
    sink = DiagnosticSink()
    loaded = load_policy(str(POLICY), sink)
    assert loaded is not None, sink.sorted()
    return loaded


@pytest.fixture(scope="session")
def report(policy: Policy) -> Report:
    """Both fixture corpora, labels found by ``auto``, ``benign`` as all continue."""
    return build_report(
        policy,
        [str(CORPUS), str(BENIGN)],
        labels=["auto"],
        benign=["benign"],
        max_end_rates={"benign": 0.5},
        tool_version="0.0.test",
    )
