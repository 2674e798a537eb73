"""Render a report as JSON (the documented document) and as a terminal summary."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

from policylang.report.model import Agreement, CorpusReport, Report

__all__ = ["render_json", "render_summary"]

IDS_SHOWN: Final = 3
"""Ids of false ends and protection failures named in the terminal summary."""


def render_json(report: Report) -> str:
    """The report as a JSON document (``docs/schemas/report.schema.json``), ending in a newline.

    ASCII-only, like every JSON output of policylang, so that it survives any
    encoding and lone surrogates in transcripts do not break it.
    """
    return json.dumps(report.to_json(), ensure_ascii=True, indent=2) + "\n"


def _percent(value: float) -> str:
    return f"{value * 100:.2f}%"


def _budget(value: float) -> str:
    return f"{round(value * 100, 6):g}%"


def _share(count: int, total: int) -> str:
    share = count / total if total else 0.0
    return f"{count:,} {_percent(share):>7}"


def _table(rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if align else cell.ljust(width)
            for cell, width, align in zip(row, widths, right, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _ids(ids: Sequence[str]) -> str:
    if not ids:
        return ""
    shown = ", ".join(ids[:IDS_SHOWN])
    more = len(ids) - IDS_SHOWN
    return f" ({shown}, and {more} more)" if more > 0 else f" ({shown})"


def _agreement(corpus: CorpusReport, agreement: Agreement) -> str:
    parts = [f"{agreement.labelled:,} labelled" + (" (benign)" if agreement.benign else "")]
    if agreement.end_rows:
        recall = agreement.recall or 0.0
        parts.append(
            f"ends {len(agreement.matched):,} of {agreement.end_rows:,} matched "
            f"({_percent(recall)}): {len(agreement.premature):,} premature, "
            f"{len(agreement.late):,} late, {len(agreement.missed):,} missed"
        )
    continue_rows = agreement.rows("continue")
    if continue_rows:
        parts.append(
            f"false ends {len(agreement.false_ends):,} of {continue_rows:,}"
            + _ids(agreement.false_ends)
        )
    crisis_rows = agreement.rows("crisis")
    if crisis_rows:
        parts.append(
            f"protection failures {len(agreement.protection_failures):,} of {crisis_rows:,}"
            + _ids(agreement.protection_failures)
        )
    return f"  {corpus.name}: " + "; ".join(parts)


def render_summary(report: Report) -> list[str]:
    """The terminal summary: a table per corpus, then agreement with gold labels.

    Returns lines without line ends, for stderr.
    """
    policy = report.policy
    noun = "corpus" if len(report.corpora) == 1 else "corpora"
    lines = [
        f"policy {policy.name} {policy.version} (sha256 {policy.sha256[:12]}) "
        f"on {len(report.corpora)} {noun}"
    ]
    budgets = any(corpus.budget is not None for corpus in report.corpora)
    header = ["CORPUS", "CONVERSATIONS", "ENDED", "ESCALATED", "WARNED", "INVALID"]
    right = [False, True, True, True, True, True]
    if budgets:
        header.append("BUDGET")
        right.append(False)
    rows: list[list[str]] = [header]
    for corpus in report.corpora:
        total = corpus.conversations
        row = [
            corpus.name,
            f"{total:,}",
            _share(corpus.count("end"), total),
            _share(corpus.count("escalate"), total),
            _share(corpus.count("warn"), total),
            f"{corpus.invalid:,}",
        ]
        if budgets:
            budget = corpus.budget
            if budget is None:
                row.append("-")
            else:
                verdict = "OVER" if budget.exceeded else "ok"
                row.append(f"{_budget(budget.max_end_rate)} {verdict}")
        rows.append(row)
    lines.extend(_table(rows, right))

    labelled = [c for c in report.corpora if c.agreement is not None]
    if labelled:
        sources = ", ".join(f"{s.path} ({s.rows:,} rows)" for s in report.label_sources)
        lines.append("agreement with gold labels" + (f" from {sources}" if sources else "") + ":")
        for corpus in labelled:
            assert corpus.agreement is not None
            lines.append(_agreement(corpus, corpus.agreement))
    elif report.label_sources:
        lines.append("no conversation matched a gold label")
    if report.unused_labels:
        noun = "label" if report.unused_labels == 1 else "labels"
        lines.append(f"{report.unused_labels:,} gold {noun} matched no conversation")
    blocked = [c for c in report.corpora if c.blocked_ends]
    if blocked:
        listed = ", ".join(f"{c.name} {c.blocked_ends:,}" for c in blocked)
        lines.append(f"a protection blocked an end in: {listed}")
    return lines
