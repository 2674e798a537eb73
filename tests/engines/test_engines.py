"""Choosing an engine: open_run gives the same chunks whatever the engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from policylang import DiagnosticSink, load_policy
from policylang.batch import Chunk, run
from policylang.engines import ENGINES, open_run

HERE = Path(__file__).parent
REPO = HERE.parents[1]
INPUTS = [str(HERE / "fixtures" / "mixed.jsonl"), str(HERE / "fixtures" / "array.json")]


def test_the_local_engine_is_batch_run() -> None:
    policy = load_policy(str(REPO / "policies" / "default.policy"), DiagnosticSink())
    assert policy is not None
    with open_run(policy, INPUTS, engine="local", jobs=1) as chunks:
        text = "".join(item.text for item in chunks if isinstance(item, Chunk))
    expected = "".join(item.text for item in run(policy, INPUTS) if isinstance(item, Chunk))
    assert text == expected
    assert text.count("\n") > 5


def test_an_unknown_engine_is_refused() -> None:
    policy = load_policy(str(REPO / "policies" / "default.policy"), DiagnosticSink())
    assert policy is not None
    with (
        pytest.raises(ValueError, match=r"unknown engine 'spark'; expected one of local, dask"),
        open_run(policy, INPUTS, engine="spark"),
    ):
        pass


def test_the_engines() -> None:
    assert ENGINES == ("local", "dask")
