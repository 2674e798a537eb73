"""``policylang explain`` on hand-written conversations, against golden outputs.

Each conversation of ``cases/<policy>.jsonl`` is explained with ``cases/fixture.policy``
(a small policy that only changes with these tests) and with ``policies/default.policy``
(edited by others: regenerate its goldens with ``pytest --update-goldens`` after a
change, and read the diff). Goldens are ``cases/<policy>/<id>.txt`` (human, no colour)
and ``cases/<policy>/<id>.json``, whose policy hash and tool version are masked.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result

from policylang.cli import main

HERE = Path(__file__).parent
CASES = HERE / "cases"
REPO = HERE.parents[1]
SCHEMA_PATH = REPO / "docs" / "schemas" / "explain.schema.json"

POLICIES = {
    "fixture": ("tests/explain/cases/fixture.policy", "tests/explain/cases/fixture.jsonl"),
    "default": ("policies/default.policy", "tests/explain/cases/default.jsonl"),
}
IDS = ("end-after-failed-redirects", "protection-blocks-end", "sincere-end", "close-to-warning")
PARAMS = [(policy, conversation) for policy in POLICIES for conversation in IDS]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(autouse=True)
def _at_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    # Relative paths, so outputs do not depend on where the checkout lives.
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("NO_COLOR", raising=False)


def explain(policy: str, conversation: str, *extra: str, charset: str = "utf-8") -> Result:
    path, transcripts = POLICIES[policy]
    args = ["explain", path, transcripts, "--id", conversation, *extra]
    result = CliRunner(charset=charset).invoke(main, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.stderr
    return result


def masked(document: dict[str, Any]) -> dict[str, Any]:
    document["policy"]["sha256"] = "<sha256>"
    document["tool"]["version"] = "<version>"
    return document


def check_golden(path: Path, actual: str, update: bool) -> None:
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing: run pytest --update-goldens"
    assert actual == path.read_text(encoding="utf-8")


@pytest.mark.parametrize(("policy", "conversation"), PARAMS)
def test_human_golden(policy: str, conversation: str, update_goldens: bool) -> None:
    result = explain(policy, conversation, "--color", "never")
    assert not ANSI.search(result.stdout)
    check_golden(CASES / policy / f"{conversation}.txt", result.stdout, update_goldens)


@pytest.mark.parametrize(("policy", "conversation"), PARAMS)
def test_json_golden(policy: str, conversation: str, update_goldens: bool) -> None:
    result = explain(policy, conversation, "--format", "json")
    assert result.stdout.isascii()
    document = masked(json.loads(result.stdout))
    text = json.dumps(document, indent=2, ensure_ascii=True) + "\n"
    check_golden(CASES / policy / f"{conversation}.json", text, update_goldens)


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize(("policy", "conversation"), PARAMS)
def test_json_is_valid_against_the_schema(
    policy: str, conversation: str, validator: jsonschema.protocols.Validator
) -> None:
    document = json.loads(explain(policy, conversation, "--format", "json").stdout)
    errors = [f"{error.json_path}: {error.message}" for error in validator.iter_errors(document)]
    assert errors == []


def test_schema_rejects_a_wrong_document(validator: jsonschema.protocols.Validator) -> None:
    document = json.loads(explain("fixture", IDS[0], "--format", "json").stdout)
    document["messages"][0]["checks"][0]["status"] = "maybe"
    assert not validator.is_valid(document)


def test_the_cases_cover_what_they_say() -> None:
    for policy in POLICIES:
        outcomes = {}
        for conversation in IDS:
            document = json.loads(explain(policy, conversation, "--format", "json").stdout)
            outcomes[conversation] = document
        ended = outcomes["end-after-failed-redirects"]
        assert ended["decision"]["outcome"] == "end"
        assert ended["decision"]["category"] is not None
        assert ended["counterfactual"]["removal"]["removed"] == [0, 1]
        blocked = outcomes["protection-blocks-end"]
        assert blocked["decision"]["outcome"] == "escalate"
        assert any(m["event"] and m["event"]["held_back"] for m in blocked["messages"])
        sincere = outcomes["sincere-end"]
        assert sincere["decision"]["category"] is None
        assert sincere["counterfactual"]["removal"]["removed"] == [2]
        close = outcomes["close-to-warning"]
        assert close["decision"]["outcome"] == "continue"
        assert close["counterfactual"] is None
        warnings = [c for c in close["closest"] if c["action"] == "warn" and c["shortfall"] == 1]
        assert warnings and "still redirected" in warnings[0]["summary"]


# ---------------------------------------------------------------- colour and encoding


def test_color_always_uses_ansi_instead_of_markers() -> None:
    result = explain("fixture", IDS[0], "--color", "always")
    assert ANSI.search(result.stdout)
    assert "«" not in result.stdout
    # The same text once the codes are removed, but for the markers.
    plain = explain("fixture", IDS[0], "--color", "never").stdout
    assert ANSI.sub("", result.stdout) == plain.replace("«", "").replace("»", "")


def test_global_color_option_applies() -> None:
    path, transcripts = POLICIES["fixture"]
    result = CliRunner().invoke(
        main, ["--color", "always", "explain", path, transcripts, "--id", IDS[0]]
    )
    assert result.exit_code == 0
    assert ANSI.search(result.stdout)


def test_auto_does_not_colour_a_pipe_nor_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not ANSI.search(explain("fixture", IDS[0]).stdout)
    monkeypatch.setenv("NO_COLOR", "1")
    assert not ANSI.search(explain("fixture", IDS[0]).stdout)


def test_json_is_never_coloured() -> None:
    result = explain("fixture", IDS[0], "--format", "json", "--color", "always")
    assert not ANSI.search(result.stdout)
    json.loads(result.stdout)


def test_ascii_terminal_gets_ascii_marks() -> None:
    result = explain("fixture", IDS[0], "--color", "never", charset="ascii")
    assert result.stdout.isascii()
    assert "[[zapgun]]" in result.stdout
    assert "\n    + rule warn_persistent for zapguns" in result.stdout
    assert "\n    - rule end_on_request" in result.stdout
    assert "\n    . rule warn_persistent: already fired at message 2" in result.stdout
    assert "-> end by rule end_persistent" in result.stdout
    assert "failed_redirects[zapguns] 1 -> 2" in result.stdout
