"""Measure a policy on transcript corpora: outcomes, where ends happen, gold agreement.

The library behind ``policylang report``. :func:`build_report` runs a loaded runtime
:class:`~policylang.runtime.Policy` over corpus files (one streaming pass each) and
returns a :class:`Report`; the renderers turn it into a self-contained HTML page
(:func:`render_html`), a versioned JSON document (:func:`render_json`, schema in
``docs/schemas/report.schema.json``) or a terminal summary (:func:`render_summary`).

    from policylang.compiler import load_policy
    from policylang.diagnostics import DiagnosticSink
    from policylang.report import build_report, render_html

    policy = load_policy("policies/default.policy", DiagnosticSink())
    report = build_report(policy, ["corpus.jsonl.gz"], labels=["auto"])
    html = render_html(report)
"""

from __future__ import annotations

from policylang.report.compute import (
    DEFAULT_EXAMPLES,
    LATE_AFTER_USER_TURNS,
    build_report,
    judge,
)
from policylang.report.htmlrender import highlight, render_html
from policylang.report.labels import (
    AUTO,
    GoldLabel,
    LabelError,
    Labels,
    corpus_name,
    discover_labels,
    read_labels,
)
from policylang.report.model import (
    REPORT_FORMAT,
    REPORT_VERSION,
    Agreement,
    Budget,
    CorpusReport,
    Example,
    Histogram,
    Report,
    ReportError,
)
from policylang.report.text import render_json, render_summary

__all__ = [
    "AUTO",
    "DEFAULT_EXAMPLES",
    "LATE_AFTER_USER_TURNS",
    "REPORT_FORMAT",
    "REPORT_VERSION",
    "Agreement",
    "Budget",
    "CorpusReport",
    "Example",
    "GoldLabel",
    "Histogram",
    "LabelError",
    "Labels",
    "Report",
    "ReportError",
    "build_report",
    "corpus_name",
    "discover_labels",
    "highlight",
    "judge",
    "read_labels",
    "render_html",
    "render_json",
    "render_summary",
]
