"""Pure renderers from diagnostics plus sources to text: human (rustc-style), short, json.

Renderers print diagnostics in the order given; sort and deduplicate first with
:meth:`policylang.diagnostics.DiagnosticSink.sorted`. Nothing here reads the
environment: whether to colour is the caller's decision.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping, Sequence

from policylang.codes import lookup
from policylang.diagnostics import Diagnostic, Label, Severity
from policylang.source import SourceFile, Span

__all__ = [
    "JSON_FORMAT_VERSION",
    "render_human",
    "render_json",
    "render_short",
    "summary_line",
]

#: ``version`` field of :func:`render_json` output; bump on incompatible changes and
#: update ``docs/schemas/diagnostics.schema.json`` with it.
JSON_FORMAT_VERSION = 1

_TAB = "    "
_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
_BLUE = "\x1b[1;34m"
_SEVERITY_STYLE = {
    Severity.ERROR: "\x1b[1;31m",
    Severity.WARNING: "\x1b[1;33m",
    Severity.INFO: "\x1b[1;36m",
}
# Characters that would be invisible, reorder the terminal line (bidi controls), break
# the line, or fail to encode are shown as <U+XXXX> instead of printed raw.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


# ---------------------------------------------------------------- display helpers


def _display(text: str) -> str:
    """Make text safe and unambiguous for a terminal: expand tabs, escape controls."""
    out: list[str] = []
    for ch in text:
        if ch == "\t":
            out.append(_TAB)
        elif unicodedata.category(ch) in _ESCAPED_CATEGORIES:
            out.append(f"<U+{ord(ch):04X}>")
        else:
            out.append(ch)
    return "".join(out)


def _width(displayed: str) -> int:
    """Terminal columns taken by already-displayed text (wide CJK 2, combining 0)."""
    total = 0
    for ch in displayed:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me"):
            continue
        total += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return total


_MAX_SNIPPET_WIDTH = 100
"""Source lines wider than this are shown as a window around the underlined text."""

_ELLIPSIS = "..."

_SIDE_WINDOW = _MAX_SNIPPET_WIDTH
"""Characters of a source line each side of a span that are displayed before clipping
(every character but a zero-width one takes a column, so a line that fits is never cut)."""


def _clip(before: str, marked: str, after: str) -> tuple[str, str, str]:
    """Cut a long displayed line to a window around ``marked``, marking each cut with ``...``."""
    if _width(before + marked + after) <= _MAX_SNIPPET_WIDTH:
        return before, marked, after
    if _width(marked) > _MAX_SNIPPET_WIDTH - 2 * len(_ELLIPSIS):
        kept = _take(marked, _MAX_SNIPPET_WIDTH - 2 * len(_ELLIPSIS))
        left = _ELLIPSIS if before else ""
        return left, kept, _ELLIPSIS
    room = (_MAX_SNIPPET_WIDTH - _width(marked)) // 2 - len(_ELLIPSIS)
    left = _take(before[::-1], room)[::-1]
    right = _take(after, room)
    if len(left) < len(before):
        left = _ELLIPSIS + left
    if len(right) < len(after):
        right += _ELLIPSIS
    return left, marked, right


def _take(text: str, columns: int) -> str:
    """The longest prefix of ``text`` that fits in ``columns`` terminal columns."""
    used = 0
    for index, ch in enumerate(text):
        used += _width(ch)
        if used > columns:
            return text[:index]
    return text


def _clamp(span: Span, source: SourceFile) -> Span:
    # Defensive: a bad span is a bug elsewhere, but it must not hide the user's report.
    size = len(source.text)
    start = min(span.start, size)
    return Span(start, max(start, min(span.end, size)))


class _Painter:
    """Wraps text in ANSI styles, or returns it unchanged when colour is off."""

    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, style: str) -> str:
        if not self.color or not text:
            return text
        return f"{style}{text}{_RESET}"


# ---------------------------------------------------------------- human


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _count(diagnostics: Sequence[Diagnostic]) -> dict[Severity, int]:
    counts = dict.fromkeys(Severity, 0)
    for diagnostic in diagnostics:
        counts[diagnostic.severity] += 1
    return counts


def summary_line(diagnostics: Sequence[Diagnostic]) -> str:
    """Return counts such as ``2 errors, 1 warning``; zero kinds are omitted.

    Returns ``""`` for no diagnostics: what to say then is the CLI's decision.
    """
    counts = _count(diagnostics)
    parts = [
        _plural(counts[Severity.ERROR], "error"),
        _plural(counts[Severity.WARNING], "warning"),
        _plural(counts[Severity.INFO], "info"),
    ]
    return ", ".join(
        part for part, severity in zip(parts, Severity, strict=True) if counts[severity]
    )


def _label_snippet(
    source: SourceFile,
    label: Label,
    *,
    mark: str,
    style: str,
    width: int,
    paint: _Painter,
) -> list[str]:
    """Two lines: the label's first source line and its underline with the message."""
    span = _clamp(label.span, source)
    line = source.line_col(span.start)[0]
    line_span = source.line_span(line)
    line_start, line_end = line_span.start, line_span.end
    segment_end = min(span.end, line_end)
    # A span ending just after a newline ends on the line of that newline.
    end_line = source.line_col(span.end - 1)[0] if span.end > span.start else line

    # Only a window of a long line can be shown: display no more of it than that, so a
    # line with thousands of diagnostics is not displayed thousands of times whole.
    text = source.text
    first = max(line_start, span.start - _SIDE_WINDOW)
    cut = min(segment_end, span.start + _MAX_SNIPPET_WIDTH)  # the marked text shown
    last = min(line_end, segment_end + _SIDE_WINDOW) if cut == segment_end else cut
    before, marked, after = _clip(
        _display(text[first : span.start]),
        _display(text[span.start : cut]),
        _display(text[segment_end:last]) if cut == segment_end else "",
    )
    if first > line_start and not before.startswith(_ELLIPSIS):
        before = _ELLIPSIS + before
    if last < line_end and not after.endswith(_ELLIPSIS):
        after += _ELLIPSIS
    pad = _width(before)
    marks = mark * max(1, _width(marked))
    message = _display(label.message)
    if end_line > line:
        message = f"{message} (continues to line {end_line})".lstrip()

    shown = (before + marked + after).rstrip()
    source_line = paint(f"{line:>{width}} |", _BLUE) + (f" {shown}" if shown else "")
    underline = (
        paint(" " * width + " |", _BLUE)
        + " "
        + " " * pad
        + paint(marks + (f" {message}" if message else ""), style)
    )
    return [source_line, underline]


def _other_files(diagnostic: Diagnostic) -> dict[str, list[Label]]:
    """Secondary labels in files other than the diagnostic's, grouped by file in label order."""
    groups: dict[str, list[Label]] = {}
    for label in diagnostic.secondary:
        path = label.path_or(diagnostic.path)
        if path != diagnostic.path:
            groups.setdefault(path, []).append(label)
    return groups


def _first_line(source: SourceFile, label: Label) -> int:
    return source.line_col(_clamp(label.span, source).start)[0]


def _other_file_block(
    path: str,
    labels: Sequence[Label],
    source: SourceFile | None,
    *,
    width: int,
    paint: _Painter,
) -> list[str]:
    """``::: path:line:col`` and the labels' snippets, or ``::: path: message`` without source."""
    empty_gutter = paint(" " * width + " |", _BLUE)
    marker = " " * width + paint(":::", _BLUE)
    if source is None:
        return [
            empty_gutter,
            *(
                f"{marker} {path}" + (f": {_display(label.message)}" if label.message else "")
                for label in labels
            ),
        ]
    line, column = source.line_col(_clamp(labels[0].span, source).start)
    lines = [empty_gutter, f"{marker} {path}:{line}:{column}"]
    for label in labels:
        lines.append(empty_gutter)
        lines += _label_snippet(source, label, mark="-", style=_BLUE, width=width, paint=paint)
    return lines


def _human_block(
    diagnostic: Diagnostic, sources: Mapping[str, SourceFile], paint: _Painter
) -> list[str]:
    severity_style = _SEVERITY_STYLE[diagnostic.severity]
    header = paint(f"{diagnostic.severity.value}[{diagnostic.code}]", severity_style)
    header += paint(f": {_display(diagnostic.message)}", _BOLD)
    lines = [header]

    source = sources.get(diagnostic.path)
    same_file = [
        label for label in diagnostic.secondary if label.path_or(diagnostic.path) == diagnostic.path
    ]
    other_files = _other_files(diagnostic)
    # One gutter width for the whole diagnostic: the widest line number shown in any file.
    shown: list[int] = []
    if source is not None:
        shown += [_first_line(source, label) for label in (diagnostic.primary, *same_file)]
    for path, labels in other_files.items():
        other = sources.get(path)
        if other is not None:
            shown += [_first_line(other, label) for label in labels]
    width = len(str(max(shown))) if shown else 1
    empty_gutter = paint(" " * width + " |", _BLUE)

    if source is None:
        lines.append(" " * width + paint("-->", _BLUE) + f" {diagnostic.path}")
    else:
        line, column = source.line_col(_clamp(diagnostic.primary.span, source).start)
        location = f"{diagnostic.path}:{line}:{column}"
        lines.append(" " * width + paint("-->", _BLUE) + f" {location}")
        lines.append(empty_gutter)
        lines += _label_snippet(
            source, diagnostic.primary, mark="^", style=severity_style, width=width, paint=paint
        )
        for secondary in same_file:
            lines.append(empty_gutter)
            lines += _label_snippet(
                source, secondary, mark="-", style=_BLUE, width=width, paint=paint
            )
    for path, labels in other_files.items():
        lines += _other_file_block(path, labels, sources.get(path), width=width, paint=paint)
    if (source is not None or other_files) and (diagnostic.notes or diagnostic.help is not None):
        lines.append(empty_gutter)

    attachments = [("note", note) for note in diagnostic.notes]
    if diagnostic.help is not None:
        attachments.append(("help", diagnostic.help))
    for kind, text in attachments:
        lines.append(
            " " * width + paint(" =", _BLUE) + f" {paint(kind + ':', _BOLD)} {_display(text)}"
        )
    return lines


def render_human(
    diagnostics: Sequence[Diagnostic],
    sources: Mapping[str, SourceFile],
    *,
    color: bool = False,
    max_errors: int | None = None,
) -> str:
    """Render diagnostics rustc-style, each followed by a blank line, then a summary.

    Layout per diagnostic: ``severity[CODE]: message``, ``--> path:line:col``, the
    primary label's source line underlined with ``^``, each secondary label's line
    underlined with ``-``, then ``= note:`` lines and ``= help:``. Secondary labels in
    another file (:attr:`Label.path`) come after those of the diagnostic's own file, in
    a block per file headed ``::: path:line:col``; without that file's source the block
    is one ``::: path: message`` line per label. A diagnostic whose path is not in
    ``sources`` gets no snippet of its own file. ``max_errors`` caps how many
    diagnostics are shown, adding ``... and K more``; the summary counts all of them.
    Returns ``""`` when there are no diagnostics. Suggestions are not shown here
    (write their text in ``help``); they appear in JSON output.
    """
    if max_errors is not None and max_errors < 0:
        raise ValueError("max_errors must be non-negative")
    if not diagnostics:
        return ""
    paint = _Painter(color)
    shown = diagnostics if max_errors is None else diagnostics[:max_errors]
    out: list[str] = []
    for diagnostic in shown:
        out += _human_block(diagnostic, sources, paint)
        out.append("")
    hidden = len(diagnostics) - len(shown)
    if hidden:
        out += [f"... and {hidden} more", ""]
    out.append(paint(summary_line(diagnostics), _BOLD))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- short


def render_short(diagnostics: Sequence[Diagnostic], sources: Mapping[str, SourceFile]) -> str:
    """Render one ``path:line:col: severity[CODE] message`` line per diagnostic.

    A diagnostic whose path is not in ``sources`` is rendered as ``path: ...``.
    """
    out: list[str] = []
    for diagnostic in diagnostics:
        source = sources.get(diagnostic.path)
        location = diagnostic.path
        if source is not None:
            line, column = source.line_col(_clamp(diagnostic.primary.span, source).start)
            location = f"{location}:{line}:{column}"
        severity = diagnostic.severity.value
        message = _display(diagnostic.message)
        out.append(f"{location}: {severity}[{diagnostic.code}] {message}\n")
    return "".join(out)


# ---------------------------------------------------------------- json

_JsonPosition = dict[str, int | None]
_JsonObject = dict[str, object]


def _position(source: SourceFile | None, offset: int) -> _JsonPosition:
    if source is None:
        return {"line": None, "column": None, "offset": offset}
    line, column = source.line_col(min(offset, len(source.text)))
    return {"line": line, "column": column, "offset": offset}


def _range(source: SourceFile | None, span: Span) -> _JsonObject:
    return {"start": _position(source, span.start), "end": _position(source, span.end)}


def _json_label(
    diagnostic: Diagnostic, label: Label, sources: Mapping[str, SourceFile], *, primary: bool
) -> _JsonObject:
    # The primary label is always in the diagnostic's own file.
    path = diagnostic.path if primary else label.path_or(diagnostic.path)
    return {
        "path": path,
        **_range(sources.get(path), label.span),
        "message": label.message,
        "primary": primary,
    }


def _json_diagnostic(diagnostic: Diagnostic, sources: Mapping[str, SourceFile]) -> _JsonObject:
    code = lookup(diagnostic.code)
    source = sources.get(diagnostic.path)
    labels: list[_JsonObject] = [
        _json_label(diagnostic, diagnostic.primary, sources, primary=True),
        *(_json_label(diagnostic, label, sources, primary=False) for label in diagnostic.secondary),
    ]
    suggestions: list[_JsonObject] = [
        {
            **_range(source, suggestion.span),
            "replacement": suggestion.replacement,
            "message": suggestion.message,
            "applicability": suggestion.applicability.value,
        }
        for suggestion in diagnostic.suggestions
    ]
    return {
        "code": code.id,
        "name": code.name,
        "severity": diagnostic.severity.value,
        "message": diagnostic.message,
        "file": diagnostic.path,
        **_range(source, diagnostic.primary.span),
        "labels": labels,
        "help": diagnostic.help,
        "notes": list(diagnostic.notes),
        "suggestions": suggestions,
        "docs": code.docs_path,
    }


def render_json(
    diagnostics: Sequence[Diagnostic],
    sources: Mapping[str, SourceFile],
    *,
    tool_version: str,
) -> str:
    """Render one JSON document (schema: ``docs/schemas/diagnostics.schema.json``).

    Positions carry 1-based ``line``/``column`` (code points) and 0-based ``offset``;
    ``line`` and ``column`` are ``null`` when the file is not in ``sources``. Each label
    names its file in ``path`` (the diagnostic's ``file`` unless the label points into
    another one) and its positions are in that file. Output
    is ASCII-only (non-ASCII is ``\\u``-escaped) and ends with a newline.
    """
    counts = _count(diagnostics)
    document = {
        "version": JSON_FORMAT_VERSION,
        "tool": {"name": "policylang", "version": tool_version},
        "diagnostics": [_json_diagnostic(d, sources) for d in diagnostics],
        "summary": {
            "errors": counts[Severity.ERROR],
            "warnings": counts[Severity.WARNING],
            "infos": counts[Severity.INFO],
        },
    }
    return json.dumps(document, indent=2, ensure_ascii=True) + "\n"
