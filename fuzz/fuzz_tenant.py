#!/usr/bin/env python3
"""Coverage-guided fuzzing of tenant files with atheris (see fuzz/README.md).

Each input is the bytes of a tenant file, applied (``analyze(..., tenant=PATH)``) to a
copy of policies/security_research.policy, which extends the default policy and has
tunable, locked parameters; the tenant file is also formatted. The invariants are those
of fuzz_policy.py.

    python fuzz/fuzz_tenant.py fuzz/corpus/tenant -dict=fuzz/policylang.dict \\
        -max_total_time=600 -timeout=20 -artifact_prefix=fuzz/crashes/
"""

from __future__ import annotations

import atheris
from _target import policy_folder, run

with atheris.instrument_imports(include=["policylang", "lark"]):
    import fuzz_helpers

FOLDER = policy_folder()
TENANT = str(FOLDER / "input.tenant")
POLICY = FOLDER / "security_research.policy"
POLICY_BYTES = POLICY.read_bytes()
fuzz_helpers.EXAMPLE_SECONDS = 0


def test_one_input(data: bytes) -> None:
    """Check one tenant file; raise on any broken invariant."""
    with open(TENANT, "wb") as handle:
        handle.write(data)
    fuzz_helpers.check_format_bytes(TENANT, data)
    fuzz_helpers.check_bytes(str(POLICY), POLICY_BYTES, tenant=TENANT, format=False)


if __name__ == "__main__":
    run(test_one_input)
