"""Render a report as one self-contained HTML page.

The page has inline CSS and inline SVG charts, and needs neither JavaScript nor
any network resource (no fonts, stylesheets or images by URL). Every value from
the policy, the transcripts or the labels is escaped with
:func:`~policylang.report.escaping.escape_text`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import jinja2
from markupsafe import Markup

from policylang.report.escaping import escape_text
from policylang.report.model import (
    GOLD_LABELS,
    OUTCOMES,
    REPORT_VERSION,
    CorpusReport,
    EvidenceItem,
    Example,
    Report,
)
from policylang.report.svg import (
    OUTCOME_COLORS,
    Bar,
    histogram_svg,
    outcome_bar_svg,
    rate_bars_svg,
)

__all__ = ["highlight", "render_html"]

OUTCOME_TITLES: Final = {
    "end": "Ended",
    "escalate": "Escalated",
    "warn": "Warned",
    "continue": "Continued",
}
LONG_ID_LIST: Final = 12
"""Id lists longer than this are folded in a ``<details>`` element."""


def _finalize(value: object) -> object:
    # Markup (charts, highlighted text, macro output) is built safe already.
    if value is None:
        return ""
    if isinstance(value, Markup):
        return value
    return escape_text(value)


def highlight(content: str, spans: Sequence[tuple[int, int, str]]) -> Markup:
    """``content`` as HTML with each ``(start, end, label)`` span in a ``<mark>``.

    Offsets are code-point offsets into ``content``; spans outside it or empty are
    ignored. Overlapping spans are cut at every boundary, so marks never nest: a
    piece covered by several spans is one ``<mark class="overlap">`` whose title
    names them all.
    """
    size = len(content)
    valid = [(start, end, label) for start, end, label in spans if 0 <= start < end <= size]
    cuts = sorted({0, size, *(s for s, _, _ in valid), *(e for _, e, _ in valid)})
    pieces: list[str] = []
    for low, high in itertools.pairwise(cuts):
        text = str(escape_text(content[low:high]))
        labels = list(dict.fromkeys(label for s, e, label in valid if s <= low and high <= e))
        if not labels:
            pieces.append(text)
            continue
        kind = ' class="overlap"' if len(labels) > 1 else ""
        title = escape_text("; ".join(labels))
        pieces.append(f'<mark{kind} title="{title}">{text}</mark>')
    return Markup("".join(pieces))


# ---------------------------------------------------------------- views


@dataclass(frozen=True, slots=True)
class MessageView:
    """A message of an example, ready to print."""

    index: int
    role: str
    html: Markup
    decided: bool
    after_end: bool
    gold_end: bool
    badges: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ExampleView:
    """An example decision and its conversation."""

    example: Example
    messages: tuple[MessageView, ...]
    open: bool


@dataclass(frozen=True, slots=True)
class CorpusView:
    """A corpus section: the data plus its charts and examples."""

    corpus: CorpusReport
    slug: str
    outcome_bar: Markup
    end_index_chart: Markup | None
    end_turn_chart: Markup | None
    examples: tuple[tuple[str, tuple[ExampleView, ...]], ...]
    anchors: dict[str, str]


def _evidence_label(item: EvidenceItem) -> str:
    return f"{item.source}: {item.detector}"


def _badge(item: EvidenceItem) -> str:
    if item.score is not None:
        return f"{item.detector} = {item.score:g}"
    return item.detector


def _example_view(example: Example, open_: bool) -> ExampleView:
    ended = example.outcome == "end" and example.message_index is not None
    after = set(example.post_termination)
    gold_end = example.gold.end_at if example.gold is not None else None
    views = []
    for index, message in enumerate(example.messages):
        evidence = [item for item in example.evidence if item.message_index == index]
        spans = [
            (item.start, item.end, _evidence_label(item))
            for item in evidence
            if item.start is not None and item.end is not None
        ]
        badges = tuple(dict.fromkeys(_badge(item) for item in evidence if item.start is None))
        views.append(
            MessageView(
                index=index,
                role=message.role,
                html=highlight(message.content, spans),
                decided=index == example.message_index,
                after_end=index in after
                or (ended and example.message_index is not None and index > example.message_index),
                gold_end=index == gold_end,
                badges=badges,
            )
        )
    return ExampleView(example, tuple(views), open_)


def _corpus_view(corpus: CorpusReport, number: int) -> CorpusView:
    counts = [(outcome, corpus.count(outcome)) for outcome in OUTCOMES]
    title = f"{corpus.name}: " + ", ".join(f"{count} {name}" for name, count in counts)
    end_index_chart = end_turn_chart = None
    if corpus.end_message_index.total:
        end_index_chart = Markup(
            histogram_svg(
                corpus.end_message_index,
                start=0,
                title=f"{corpus.name}: message index at which conversations were ended",
                x_label="message index of the end (0-based)",
            )
        )
        end_turn_chart = Markup(
            histogram_svg(
                corpus.end_user_turn,
                start=1,
                title=f"{corpus.name}: user turn at which conversations were ended",
                x_label="user turn of the end (1 = first user message)",
            )
        )
    examples = tuple(
        (
            outcome,
            tuple(
                _example_view(example, open_=outcome != "continue" and position == 0)
                for position, example in enumerate(corpus.examples.get(outcome, ()))
            ),
        )
        for outcome in OUTCOMES
    )
    anchors: dict[str, str] = {}
    for _, views in examples:
        for view in views:
            anchors.setdefault(view.example.conversation_id, view.example.anchor)
    return CorpusView(
        corpus=corpus,
        slug=f"corpus-{number}",
        outcome_bar=Markup(outcome_bar_svg(counts, title=title)),
        end_index_chart=end_index_chart,
        end_turn_chart=end_turn_chart,
        examples=examples,
        anchors=anchors,
    )


# ---------------------------------------------------------------- rendering


def _percent(value: float | None) -> str:
    if value is None:
        return "\u2013"
    return f"{value * 100:.2f}%"


def _budget(value: float) -> str:
    return f"{round(value * 100, 6):g}%"


def _count(value: int) -> str:
    return f"{value:,}"


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("policylang.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.filters.update(percent=_percent, budget=_budget, num=_count)
    return env


def render_html(report: Report) -> str:
    """The report as one self-contained HTML document."""
    corpora = [_corpus_view(corpus, number) for number, corpus in enumerate(report.corpora, 1)]
    rate_chart = Markup(
        rate_bars_svg(
            [
                Bar(
                    corpus.name,
                    corpus.rate("end"),
                    None if corpus.budget is None else corpus.budget.max_end_rate,
                )
                for corpus in report.corpora
            ],
            title="Share of conversations ended, by corpus",
            x_label="conversations ended (dashed line: the --max-end-rate budget)",
        )
    )
    template = _environment().get_template("report.html.j2")
    return template.render(
        report=report,
        corpora=corpora,
        rate_chart=rate_chart,
        outcomes=OUTCOMES,
        gold_labels=GOLD_LABELS,
        outcome_titles=OUTCOME_TITLES,
        outcome_colors=OUTCOME_COLORS,
        long_id_list=LONG_ID_LIST,
        report_version=REPORT_VERSION,
    )
