"""The wheel carries everything the package loads at run time."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("*.whl")
    return built


def test_wheel_ships_grammar_templates_and_marker(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "policylang/_grammar/policylang.lark" in names
    assert "policylang/codegen/templates/module.py.j2" in names
    assert "policylang/report/templates/report.html.j2" in names
    assert "policylang/report/templates/style.css" in names
    assert "policylang/init_templates/starter.policy.tmpl" in names
    assert "policylang/py.typed" in names
    assert "policylang/runtime.py" in names


def test_packaged_grammar_is_the_repository_grammar(wheel: Path) -> None:
    packaged = zipfile.ZipFile(wheel).read("policylang/_grammar/policylang.lark")
    assert packaged == (ROOT / "grammars" / "policylang.lark").read_bytes()


def test_installed_wheel_compiles_a_policy(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    probe = (
        "import policylang, policylang.parser as p\n"
        f"assert policylang.__file__.startswith({str(target)!r}), policylang.__file__\n"
        "sink = policylang.DiagnosticSink()\n"
        "src = policylang.SourceFile.from_text('x.policy', 'policy x { version: \"1\" }')\n"
        "assert policylang.compile_source(src, sink) is not None, sink.sorted()\n"
        "print(p.REPOSITORY_GRAMMAR.exists())\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r})\n" + probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    # No repository grammar beside the installed package: the packaged one was used.
    assert result.stdout.strip() == "False"
