"""The JSON report of policylang diff is valid against docs/schemas/diff.schema.json."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from policylang.cli import main
from policylang.diff import CHANGE_KINDS

FIXTURES = Path(__file__).parent / "fixtures"
OLD = FIXTURES / "old.policy"
NEW = FIXTURES / "new.policy"
RENAMED = FIXTURES / "renamed.policy"
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "diff.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def diff_json(*args: object) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["diff", *map(str, args), "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


RUNS = {
    "forward": (OLD, NEW, FIXTURES / "valid.jsonl"),
    "backward": (NEW, OLD, FIXTURES / "valid.jsonl"),
    "invalid record": (OLD, NEW, FIXTURES / "transcripts.jsonl"),
    "rule renamed": (OLD, RENAMED, FIXTURES / "valid.jsonl"),
    "branches in a JSON array": (OLD, NEW, FIXTURES / "branches.json"),
    "no examples": (OLD, NEW, FIXTURES / "valid.jsonl", "--examples", "0"),
    "identical": (OLD, OLD, FIXTURES / "valid.jsonl"),
}


@pytest.mark.parametrize("args", RUNS.values(), ids=RUNS.keys())
def test_real_output_is_valid(validator: jsonschema.protocols.Validator, args: tuple[Any]) -> None:
    document = diff_json(*args)
    errors = [error.message for error in validator.iter_errors(document)]
    assert errors == []


def test_runs_cover_every_kind_and_nullable_field() -> None:
    documents = [diff_json(*args) for args in RUNS.values()]
    examples = [
        example
        for document in documents
        for change in document["changes"].values()
        for example in change["examples"]
    ]
    seen = {kind for document in documents for kind in CHANGE_KINDS
            if document["changes"][kind]["examples"]}
    assert seen == set(CHANGE_KINDS)
    assert any(example["index"] is None for example in examples)
    assert any(example["index"] is not None for example in examples)
    assert any(example["branch"] for example in examples)
    assert any(example["old"]["rule"] is None for example in examples)
    assert any(document["invalid"] for document in documents)


def test_schema_lists_every_change_kind() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["properties"]["changes"]["required"] == list(CHANGE_KINDS)


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.pop("version"),
        lambda d: d.update(version=2),
        lambda d: d["totals"].update(changed_rate=1.5),
        lambda d: d["changes"].pop("rule_changed"),
        lambda d: d["changes"].update(renamed={"count": 0, "rate": 0.0, "examples": []}),
        lambda d: d["changes"]["newly_ended"]["examples"][0]["new"].update(outcome="stop"),
        lambda d: d["changes"]["newly_ended"]["examples"][0].update(line=0),
        lambda d: d["old"].update(sha256="abc"),
    ],
)
def test_schema_rejects_a_wrong_document(
    validator: jsonschema.protocols.Validator, damage: Any
) -> None:
    document = copy.deepcopy(diff_json(*RUNS["forward"]))
    assert validator.is_valid(document)
    damage(document)
    assert not validator.is_valid(document)
