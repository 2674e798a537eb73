"""The golden generated modules type-check under ``mypy --strict`` with the runtime."""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[2]
CASES_DIR = Path(__file__).resolve().parent / "cases"


def test_goldens_pass_mypy_strict() -> None:
    goldens = sorted(
        str(path)
        for folder in (CASES_DIR, CASES_DIR.parent / "policies")
        for path in folder.glob("*.expected.py")
    )
    assert goldens
    stdout, stderr, status = api.run(
        [
            "--strict",
            "--no-incremental",
            "--cache-dir=/dev/null",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            *goldens,
            str(ROOT / "policylang" / "runtime.py"),
        ]
    )
    assert status == 0, stdout + stderr
    assert "Success: no issues found" in stdout
