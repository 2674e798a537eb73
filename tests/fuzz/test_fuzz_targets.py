"""The atheris targets in fuzz/ run: each checks its whole seed corpus without a violation.

atheris is not a test dependency, so a stand-in module takes its place: the targets'
``test_one_input`` is what libFuzzer would call, and the seeds are what
``fuzz/make_corpus.py`` writes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path

import fuzz_helpers
import pytest
from fuzz_helpers import ROOT

FUZZ = ROOT / "fuzz"


def _stand_in() -> types.ModuleType:
    module = types.ModuleType("atheris")

    @contextlib.contextmanager
    def instrument_imports(**_: object) -> Iterator[None]:
        yield

    module.instrument_imports = instrument_imports  # type: ignore[attr-defined]
    return module


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    spec = importlib.util.spec_from_file_location("make_corpus", FUZZ / "make_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = sys.argv
    sys.argv = ["make_corpus.py", str(folder)]
    try:
        module.main()
    finally:
        sys.argv = argv
    return folder


@pytest.mark.parametrize(
    ("target", "kind", "least"),
    [
        ("fuzz_policy", "policy", 10),
        ("fuzz_tenant", "tenant", 5),
        ("fuzz_transcript", "transcript", 20),
    ],
)
def test_a_target_checks_its_seed_corpus(
    target: str,
    kind: str,
    least: int,
    corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "atheris", _stand_in())
    monkeypatch.syspath_prepend(str(FUZZ))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    # The targets switch the alarm off for libFuzzer; put it back afterwards.
    monkeypatch.setattr(fuzz_helpers, "EXAMPLE_SECONDS", fuzz_helpers.EXAMPLE_SECONDS)
    spec = importlib.util.spec_from_file_location(f"_{target}", FUZZ / f"{target}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    seeds = sorted((corpus / kind).iterdir())
    assert len(seeds) >= least
    for seed in seeds:
        module.test_one_input(seed.read_bytes())
