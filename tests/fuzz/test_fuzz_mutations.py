"""Fuzz: mutated real policies, extensions, bases, cycles and tenants give only diagnostics.

The bundled policies (policies/*.policy) and tenant (policies/tenants/*.tenant) are
copied into a temporary folder, so extensions find ``default.policy`` beside them; each
example writes its mutant there and runs every invariant of :mod:`fuzz_helpers` on it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fuzz_helpers import BUNDLED_POLICIES, BUNDLED_TENANTS, check_bytes, check_format_bytes
from fuzz_seeds import CYCLES, EXTENSIONS, TENANTS
from fuzz_strategies import FUZZ, fuzz_settings, mutated
from hypothesis import given
from hypothesis import strategies as st

POLICY_TEXT = {path.name: path.read_bytes() for path in BUNDLED_POLICIES}
TENANT_TEXT = {path.name: path.read_bytes() for path in BUNDLED_TENANTS}
EXTENDING = sorted(name for name, text in POLICY_TEXT.items() if b"extends:" in text)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding copies of the bundled policies, tenants and the cycle files."""
    root = tmp_path_factory.mktemp("fuzz-mutations")
    for path in (*BUNDLED_POLICIES, *BUNDLED_TENANTS):
        shutil.copy(path, root / path.name)
    for name, text in CYCLES.items():
        (root / name).write_bytes(text)
    return root


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


@fuzz_settings(scale=2)
@given(data=st.data(), name=st.sampled_from(sorted(POLICY_TEXT)))
def test_mutated_bundled_policy(folder: Path, data: st.DataObject, name: str) -> None:
    text = data.draw(mutated(POLICY_TEXT[name]), label="mutant")
    check_bytes(_write(folder / f"mutant-{name}", text), text)


@fuzz_settings(scale=0.75)
@given(data=st.data(), child=st.sampled_from(EXTENDING))
def test_mutated_base_under_an_extension(folder: Path, data: st.DataObject, child: str) -> None:
    # The extension is intact; the base it extends is broken: diagnostics point into it.
    base = folder / "mutated-base"
    base.mkdir(exist_ok=True)
    mutant = data.draw(mutated(POLICY_TEXT["default.policy"]), label="base")
    check_format_bytes(_write(base / "default.policy", mutant), mutant)
    path = _write(base / child, POLICY_TEXT[child])
    check_bytes(path, POLICY_TEXT[child], format=False)


@fuzz_settings(scale=2)
@given(data=st.data(), original=st.sampled_from(EXTENSIONS))
def test_mutated_extension(folder: Path, data: st.DataObject, original: bytes) -> None:
    text = data.draw(mutated(original), label="extension")
    check_bytes(_write(folder / "extension.policy", text), text)


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(CYCLES)), mutate=st.booleans())
def test_cycles_and_self_reference(
    folder: Path, data: st.DataObject, name: str, mutate: bool
) -> None:
    cycle = folder / "cycle"
    cycle.mkdir(exist_ok=True)
    for other, text in CYCLES.items():
        _write(cycle / other, text)
    text = data.draw(mutated(CYCLES[name])) if mutate else CYCLES[name]
    check_bytes(_write(cycle / name, text), text)


@FUZZ
@given(data=st.data(), original=st.sampled_from([*TENANT_TEXT.values(), *TENANTS]))
def test_mutated_tenant(folder: Path, data: st.DataObject, original: bytes) -> None:
    mutant = data.draw(mutated(original), label="tenant")
    tenant = _write(folder / "mutant.tenant", mutant)
    check_format_bytes(tenant, mutant)
    policy = folder / "security_research.policy"
    check_bytes(str(policy), policy.read_bytes(), tenant=tenant, format=False)


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(POLICY_TEXT)))
def test_tenant_applied_to_mutated_policy(folder: Path, data: st.DataObject, name: str) -> None:
    text = data.draw(mutated(POLICY_TEXT[name]), label="mutant")
    tenant = str(folder / sorted(TENANT_TEXT)[0])
    check_bytes(_write(folder / f"tenanted-{name}", text), text, tenant=tenant)
