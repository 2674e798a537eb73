"""What the atheris targets share: the import path, a folder of policies, the guard.

The invariants themselves live in tests/fuzz/fuzz_helpers.py, so that the hypothesis
properties and these coverage-guided targets check exactly the same things.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))


def run(test_one_input: Callable[[bytes], None]) -> None:
    """Fuzz ``test_one_input`` with libFuzzer's command-line options."""
    import atheris

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


def policy_folder() -> Path:
    """A fresh temporary folder holding copies of the bundled policies and tenants.

    Inputs are written there, so an input that `extends: "default.policy"` (or imports
    from it, or names any bundled policy) finds a real file beside it.
    """
    folder = Path(tempfile.mkdtemp(prefix="policylang-fuzz-"))
    policies = ROOT / "policies"
    for path in [*policies.glob("*.policy"), *(policies / "tenants").glob("*.tenant")]:
        shutil.copy(path, folder / path.name)
    return folder
