#!/usr/bin/env python3
"""Coverage-guided fuzzing of the policy front end with atheris (see fuzz/README.md).

Each input is the bytes of a policy file, written beside copies of the bundled policies
(so `extends` and `import` reach real files) and checked with ``analyze`` and
``format_source``. Any broken invariant (an exception, PL900, an unregistered code, a
span outside its file, a Python warning, a formatter round trip that changes the policy)
raises, and atheris saves the input as a crash file.

    python fuzz/fuzz_policy.py fuzz/corpus/policy -dict=fuzz/policylang.dict \\
        -max_total_time=600 -timeout=20 -artifact_prefix=fuzz/crashes/
"""

from __future__ import annotations

import atheris
from _target import policy_folder, run

with atheris.instrument_imports(include=["policylang", "lark"]):
    import fuzz_helpers

FOLDER = policy_folder()
PATH = str(FOLDER / "input.policy")
# libFuzzer's -timeout owns SIGALRM; the helpers' own alarm would switch it off.
fuzz_helpers.EXAMPLE_SECONDS = 0


def test_one_input(data: bytes) -> None:
    """Check one policy file; raise on any broken invariant."""
    with open(PATH, "wb") as handle:
        handle.write(data)
    fuzz_helpers.check_bytes(PATH, data)


if __name__ == "__main__":
    run(test_one_input)
