"""The metrics of ``policylang.report``: exact counts on hand-written corpora and labels.

``fixtures/corpus.jsonl`` has one conversation for each way a decision can fare
against its gold label (``fixtures/gold/corpus.jsonl``), plus an unlabelled one, a
hostile one and an invalid line (line 12). ``fixtures/benign.jsonl`` is given as
``--benign``: its one end is a false end.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from policylang.report import (
    CorpusReport,
    LabelError,
    Labels,
    Report,
    ReportError,
    build_report,
    corpus_name,
    discover_labels,
    judge,
    read_labels,
)
from policylang.runtime import Policy
from policylang.transcripts import Conversation

FIXTURES = Path(__file__).parent / "fixtures"
CORPUS = FIXTURES / "corpus.jsonl"
BENIGN = FIXTURES / "benign.jsonl"
GOLD = FIXTURES / "gold" / "corpus.jsonl"


def corpus(report: Report, name: str) -> CorpusReport:
    (found,) = [item for item in report.corpora if item.name == name]
    return found


# ---------------------------------------------------------------- counts


def test_outcome_counts(report: Report) -> None:
    main = corpus(report, "corpus")
    assert main.path == str(CORPUS)
    assert main.conversations == 12
    assert main.messages == 53  # 7 + 7 + 7 + 9 + 5 + 3 + 3 + 3 + 2 + 3 + 2 + 2
    assert dict(main.outcomes) == {"end": 9, "escalate": 1, "warn": 1, "continue": 1}
    assert main.rate("end") == pytest.approx(9 / 12)
    assert main.blocked_ends == 1


def test_invalid_records_are_counted_with_file_and_line(report: Report) -> None:
    main = corpus(report, "corpus")
    assert main.invalid == 1
    (record,) = main.invalid_records
    assert (record.file, record.line, record.code) == (str(CORPUS), 12, "PL801")
    assert record.located().startswith(f"{CORPUS}:12:")
    assert report.invalid == 1
    assert corpus(report, "benign").invalid == 0


def test_counts_by_rule_and_category(report: Report) -> None:
    main = corpus(report, "corpus")
    rules = {row.name: dict(row.counts) for row in main.rules}
    assert rules == {
        "end_on_request": {"end": 5, "escalate": 0, "warn": 0},
        "end_persistent": {"end": 4, "escalate": 0, "warn": 0},
        "danger": {"end": 0, "escalate": 1, "warn": 0},
        "warn_persistent": {"end": 0, "escalate": 0, "warn": 1},
    }
    # Most first, ties by name.
    assert [row.name for row in main.rules] == [
        "end_on_request",
        "end_persistent",
        "danger",
        "warn_persistent",
    ]
    assert [(row.name, row.total, dict(row.counts)) for row in main.categories] == [
        ("zapguns", 5, {"end": 4, "escalate": 0, "warn": 1})
    ]


def test_where_conversations_end(report: Report) -> None:
    main = corpus(report, "corpus")
    # Index 0: unlabelled and hostile; 2: false-end, protection-failure, user-request;
    # 6: the four zap-gun conversations, at their fourth user turn.
    assert main.end_message_index.counts == ((0, 2), (2, 3), (6, 4))
    assert main.end_user_turn.counts == ((1, 2), (2, 3), (4, 4))
    assert main.end_message_index.total == main.count("end")


# ---------------------------------------------------------------- agreement


def test_agreement_lists_every_case(report: Report) -> None:
    agreement = corpus(report, "corpus").agreement
    assert agreement is not None
    assert agreement.matched == ("matched", "matched-later", "user-request")
    assert agreement.premature == ("premature",)
    assert agreement.late == ("late",)
    assert agreement.missed == ("missed",)
    assert agreement.false_ends == ("false-end",)
    assert agreement.protection_failures == ("protection-failure",)
    assert agreement.labelled == 10
    assert agreement.unlabelled == 2  # "unlabelled" and "hostile"
    assert agreement.end_rows == 6
    assert agreement.recall == pytest.approx(3 / 6)
    assert not agreement.benign


def test_confusion_table(report: Report) -> None:
    agreement = corpus(report, "corpus").agreement
    assert agreement is not None
    assert {label: dict(row) for label, row in agreement.confusion.items()} == {
        "end": {"end": 4, "escalate": 0, "warn": 1, "continue": 0},
        "user_request": {"end": 1, "escalate": 0, "warn": 0, "continue": 0},
        "crisis": {"end": 1, "escalate": 1, "warn": 0, "continue": 0},
        "continue": {"end": 1, "escalate": 0, "warn": 0, "continue": 1},
    }
    assert sum(sum(row.values()) for row in agreement.confusion.values()) == agreement.labelled


def test_benign_corpus_counts_every_end_as_false(report: Report) -> None:
    benign = corpus(report, "benign")
    agreement = benign.agreement
    assert agreement is not None
    assert agreement.benign
    assert agreement.labelled == 3
    assert agreement.unlabelled == 0
    assert agreement.false_ends == ("benign-2",)
    assert agreement.end_rows == 0
    assert agreement.recall is None
    assert report.benign == ("benign",)


def test_labels_auto_and_unused_labels(report: Report) -> None:
    assert [(s.path, s.rows, s.auto) for s in report.label_sources] == [(str(GOLD), 11, True)]
    assert corpus(report, "corpus").label_files == (str(GOLD),)
    assert corpus(report, "benign").label_files == ()
    assert report.unused_labels == 1
    assert report.unused_label_ids == ("not-in-any-corpus",)


def test_without_labels_there_is_no_agreement(policy: Policy) -> None:
    report = build_report(policy, [str(CORPUS)])
    assert report.corpora[0].agreement is None
    assert not report.labelled
    assert report.label_sources == ()


def test_explicit_label_file_matches_by_id_in_any_corpus(policy: Policy, tmp_path: Path) -> None:
    labels = tmp_path / "mine.jsonl"
    labels.write_text(
        '{"id": "benign-2", "label": "user_request", "end_at": 0}\n'
        '{"id": "benign-1", "label": "crisis", "end_at": null}\n',
        encoding="utf-8",
    )
    report = build_report(policy, [str(BENIGN)], labels=[str(labels)])
    agreement = report.corpora[0].agreement
    assert agreement is not None
    assert agreement.matched == ("benign-2",)
    assert agreement.labelled == 2
    assert agreement.unlabelled == 1
    assert agreement.rows("crisis") == 1


def test_explicit_labels_win_over_benign(policy: Policy, tmp_path: Path) -> None:
    labels = tmp_path / "mine.jsonl"
    labels.write_text('{"id": "benign-2", "label": "user_request", "end_at": 0}\n')
    report = build_report(policy, [str(BENIGN)], labels=[str(labels)], benign=["benign"])
    agreement = report.corpora[0].agreement
    assert agreement is not None
    assert agreement.false_ends == ()
    assert agreement.matched == ("benign-2",)
    assert agreement.rows("continue") == 2


@pytest.mark.parametrize(
    ("end_at", "verdict"),
    [
        (7, "premature"),  # the end (message 6) comes before end_at
        (6, "matched"),
        (5, "matched"),
        (4, "matched"),  # one user turn (6) after end_at
        (3, "matched"),
        (2, "matched"),  # two user turns (4, 6) after end_at: still matched
        (1, "late"),  # three (2, 4, 6)
        (0, "late"),
    ],
)
def test_judge_window_of_two_user_turns(policy: Policy, end_at: int, verdict: str) -> None:
    line = CORPUS.read_text(encoding="utf-8").splitlines()[0]
    conversation = Conversation.model_validate_json(line)
    decision = policy.evaluate(conversation.messages, conversation.id)
    assert decision.message_index == 6
    assert judge("end", end_at, conversation, decision) == verdict
    assert judge("user_request", end_at, conversation, decision) == verdict
    assert judge("continue", None, conversation, decision) == "false_end"
    assert judge("crisis", None, conversation, decision) == "protection_failure"


# ---------------------------------------------------------------- examples


def test_examples_put_disagreements_first(report: Report) -> None:
    main = corpus(report, "corpus")
    ends = [example.conversation_id for example in main.examples["end"]]
    assert ends == ["late", "premature", "false-end", "protection-failure", "matched"]
    assert [e.conversation_id for e in main.examples["warn"]] == ["missed"]
    assert [e.conversation_id for e in main.examples["escalate"]] == ["crisis-ok"]
    assert [e.conversation_id for e in main.examples["continue"]] == ["continue-ok"]


def test_examples_limit_and_content(policy: Policy) -> None:
    report = build_report(policy, [str(CORPUS)], labels=["auto"], examples=2)
    main = report.corpora[0]
    assert [e.conversation_id for e in main.examples["end"]] == ["late", "premature"]
    late = main.examples["end"][0]
    assert (late.file, late.line, late.message_index, late.user_turn) == (str(CORPUS), 3, 6, 4)
    assert late.rule == "end_persistent"
    assert late.gold is not None
    assert (late.gold.label, late.gold.end_at, late.gold.verdict) == ("end", 0, "late")
    assert late.gold.source == f"{GOLD}:3"
    assert len(late.messages) == 7
    assert late.evidence and all(item.message_index <= 6 for item in late.evidence)
    assert build_report(policy, [str(CORPUS)], examples=0).corpora[0].examples["end"] == ()


def test_example_anchors_are_unique_and_safe(report: Report) -> None:
    anchors = [
        example.anchor
        for item in report.corpora
        for examples in item.examples.values()
        for example in examples
    ]
    assert len(anchors) == len(set(anchors))
    assert all(anchor.replace("-", "").replace("_", "").isalnum() for anchor in anchors)


# ---------------------------------------------------------------- budget


def test_budget(report: Report) -> None:
    benign = corpus(report, "benign")
    assert benign.budget is not None
    assert benign.budget.max_end_rate == 0.5
    assert benign.budget.end_rate == pytest.approx(1 / 3)
    assert not benign.budget.exceeded
    assert corpus(report, "corpus").budget is None
    assert report.over_budget == ()


def test_budget_exceeded(policy: Policy) -> None:
    report = build_report(policy, [str(BENIGN)], max_end_rates={"benign": 0.005})
    assert [item.name for item in report.over_budget] == ["benign"]


# ---------------------------------------------------------------- usage problems


def test_unknown_corpus_names_are_refused(policy: Policy) -> None:
    with pytest.raises(ReportError, match="--benign `nope`"):
        build_report(policy, [str(BENIGN)], benign=["nope"])
    with pytest.raises(ReportError, match="--max-end-rate `nope`"):
        build_report(policy, [str(BENIGN)], max_end_rates={"nope": 0.1})


def test_two_corpora_with_one_name_are_refused(policy: Policy, tmp_path: Path) -> None:
    other = tmp_path / "benign.jsonl.gz"
    other.write_bytes(gzip.compress(BENIGN.read_bytes()))
    with pytest.raises(ReportError, match="two corpora are named `benign`"):
        build_report(policy, [str(BENIGN), str(other)])


def test_unreadable_corpus_is_reported_not_raised(policy: Policy, tmp_path: Path) -> None:
    folder = tmp_path / "dir.jsonl"
    folder.mkdir()
    report = build_report(policy, [str(folder), str(BENIGN)])
    assert report.corpora[0].read_error is not None
    assert report.corpora[1].conversations == 3


# ---------------------------------------------------------------- labels


def test_corpus_name() -> None:
    assert corpus_name("../shared/corpora/hh-benign-dev.jsonl.gz") == "hh-benign-dev"
    assert corpus_name("a/b.jsonl") == "b"
    assert corpus_name("b.gz") == "b"
    assert corpus_name("b.txt") == "b.txt"
    assert corpus_name("-") == "stdin"


def test_discover_labels(tmp_path: Path) -> None:
    assert discover_labels(str(CORPUS)) == str(GOLD)
    assert discover_labels(str(BENIGN)) is None
    assert discover_labels("-") is None
    (tmp_path / "gold").mkdir()
    gz = tmp_path / "gold" / "x.jsonl.gz"
    gz.write_bytes(gzip.compress(GOLD.read_bytes()))
    assert discover_labels(str(tmp_path / "x.jsonl.gz")) == str(gz)
    assert len(read_labels(str(gz))) == 11


def test_read_labels_fields() -> None:
    labels = read_labels(str(GOLD))
    assert [(label.id, label.label, label.end_at) for label in labels[:2]] == [
        ("matched", "end", 6),
        ("matched-later", "end", 4),
    ]
    assert labels[0].source == f"{GOLD}:1"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "invalid JSON"),
        ("[1]", "should be a JSON object"),
        ('{"label": "end", "end_at": 1}', "`id` should be a string"),
        ('{"id": "a", "label": "stop", "end_at": 1}', "`label` should be one of"),
        ('{"id": "a", "label": "end", "end_at": null}', "needs `end_at`"),
        ('{"id": "a", "label": "user_request", "end_at": true}', "needs `end_at`"),
        ('{"id": "a", "label": "end", "end_at": -1}', "needs `end_at`"),
    ],
)
def test_bad_labels_are_located(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text('{"id": "ok", "label": "continue", "end_at": null}\n\n' + line + "\n")
    with pytest.raises(LabelError, match=message) as caught:
        read_labels(str(path))
    assert str(caught.value).startswith(f"{path}:3: ")


def test_missing_label_file(tmp_path: Path) -> None:
    with pytest.raises(LabelError, match="cannot read labels"):
        read_labels(str(tmp_path / "missing.jsonl"))


def test_conflicting_labels_are_refused() -> None:
    labels = Labels()
    first = read_labels(str(GOLD))
    assert labels.add(first) == 11
    assert labels.add(first) == 11  # the same rows again are fine
    changed = [row for row in first if row.id == "matched"]
    object.__setattr__(changed[0], "label", "continue")
    with pytest.raises(LabelError, match="id `matched` is labelled `continue` here but `end`"):
        Labels().add([*read_labels(str(GOLD)), *changed])


def test_integer_ids_are_text(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps({"id": 7, "label": "continue", "end_at": None}) + "\n")
    assert read_labels(str(path))[0].id == "7"
