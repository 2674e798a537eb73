"""The JSON report: valid against docs/schemas/report.schema.json, with the same numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from policylang.report import REPORT_VERSION, Report, render_json, render_summary

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "report.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def document(report: Report) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(render_json(report))
    return data


def test_valid_against_schema(
    validator: jsonschema.protocols.Validator, document: dict[str, Any]
) -> None:
    errors = [f"{error.json_path}: {error.message}" for error in validator.iter_errors(document)]
    assert errors == []


def test_schema_rejects_a_wrong_document(
    validator: jsonschema.protocols.Validator, document: dict[str, Any]
) -> None:
    broken = json.loads(json.dumps(document))
    broken["corpora"][0]["outcomes"]["ended"] = 1
    assert not validator.is_valid(broken)


def test_header(document: dict[str, Any]) -> None:
    assert document["format"] == "policylang-report"
    assert document["version"] == REPORT_VERSION == 1
    assert document["tool"] == {"name": "policylang", "version": "0.0.test"}
    assert document["policy"]["name"] == "report_fixture"
    assert document["settings"]["examples_per_outcome"] == 5
    assert document["settings"]["benign"] == ["benign"]
    assert document["unused_labels"] == {"count": 1, "ids": ["not-in-any-corpus"]}
    assert document["over_budget"] == []


def test_numbers_match_the_model(document: dict[str, Any]) -> None:
    corpus, benign = document["corpora"]
    assert corpus["name"] == "corpus"
    assert corpus["outcomes"] == {"end": 9, "escalate": 1, "warn": 1, "continue": 1}
    assert corpus["rates"]["end"] == pytest.approx(0.75)
    assert corpus["end_message_index"] == [
        {"value": 0, "count": 2},
        {"value": 2, "count": 3},
        {"value": 6, "count": 4},
    ]
    assert corpus["invalid"] == 1
    assert corpus["invalid_records"][0]["line"] == 12
    agreement = corpus["agreement"]
    assert agreement["matched"] == ["matched", "matched-later", "user-request"]
    assert agreement["premature"] == ["premature"]
    assert agreement["late"] == ["late"]
    assert agreement["missed"] == ["missed"]
    assert agreement["false_ends"] == ["false-end"]
    assert agreement["protection_failures"] == ["protection-failure"]
    assert agreement["end_recall"] == pytest.approx(0.5)
    assert agreement["confusion"]["crisis"] == {"end": 1, "escalate": 1, "warn": 0, "continue": 0}
    assert benign["agreement"]["false_ends"] == ["benign-2"]
    assert benign["agreement"]["end_recall"] is None
    assert benign["budget"] == {"max_end_rate": 0.5, "end_rate": pytest.approx(1 / 3),
                                "exceeded": False}  # fmt: skip


def test_examples_carry_the_conversation(document: dict[str, Any]) -> None:
    example = document["corpora"][0]["examples"]["end"][0]
    assert example["conversation_id"] == "late"
    assert example["gold"]["verdict"] == "late"
    assert example["messages"][0] == {"role": "user", "content": "How do I build a zapgun?"}
    assert example["evidence"]
    for evidence in example["evidence"]:
        content = example["messages"][evidence["message_index"]]["content"]
        assert content[evidence["start"] : evidence["end"]] == evidence["text"]


def test_ascii_and_deterministic(report: Report) -> None:
    text = render_json(report)
    assert text.isascii()
    assert text.endswith("}\n")
    assert text == render_json(report)


def test_summary_lines(report: Report) -> None:
    lines = render_summary(report)
    assert lines[0].startswith("policy report_fixture 0.1.0 (sha256 ")
    assert lines[1].split() == [
        "CORPUS", "CONVERSATIONS", "ENDED", "ESCALATED", "WARNED", "INVALID", "BUDGET",
    ]  # fmt: skip
    assert lines[2].split() == ["corpus", "12", "9", "75.00%", "1", "8.33%", "1", "8.33%", "1",
                                "-"]  # fmt: skip
    assert lines[3].split() == ["benign", "3", "1", "33.33%", "0", "0.00%", "0", "0.00%", "0",
                                "50%", "ok"]  # fmt: skip
    assert lines[4].startswith("agreement with gold labels from ")
    assert lines[5] == (
        "  corpus: 10 labelled; ends 3 of 6 matched (50.00%): 1 premature, 1 late, 1 missed; "
        "false ends 1 of 2 (false-end); protection failures 1 of 2 (protection-failure)"
    )
    assert lines[6] == "  benign: 3 labelled (benign); false ends 1 of 3 (benign-2)"
    assert "1 gold label matched no conversation" in lines
