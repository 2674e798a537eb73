"""Diagnostics as a SARIF 2.1.0 log, for code-scanning services and SARIF viewers.

One log, one run. ``tool.driver.rules`` holds a rule for every code that appears, taken
from :mod:`policylang.codes`; each diagnostic becomes a ``result`` pointing at its rule
by ``ruleId`` and ``ruleIndex``. Secondary labels become ``relatedLocations`` (a label
in another file, such as a base policy, points at that file's artifact, with its region
computed from that file's source) and suggestions become ``fixes``.

Positions: ``startLine``/``startColumn``/``endLine``/``endColumn`` are 1-based, columns
count Unicode code points (the run says so with ``columnKind: unicodeCodePoints``), and
``endColumn`` is the column just after the region, as SARIF requires. A zero-width
span is an insertion point (``startColumn == endColumn``). Character offsets are not
emitted: policylang's offsets are into newline-normalized text, which a CRLF file on
disk does not match.

File locations are URIs relative to ``root`` (the current directory by default) with
``uriBaseId: "%SRCROOT%"``, forward slashes and percent-encoding; a file outside
``root`` gets an absolute ``file://`` URI and no base id.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Final, Literal

from policylang.codes import CODES, lookup
from policylang.diagnostics import Diagnostic, Severity, Suggestion
from policylang.source import SourceFile, Span

__all__ = [
    "DOCS_BASE_URI",
    "INFORMATION_URI",
    "SARIF_SCHEMA_URI",
    "SARIF_VERSION",
    "SRCROOT",
    "Notification",
    "artifact_uri",
    "render_sarif",
    "sarif_log",
]

SARIF_VERSION: Final = "2.1.0"
SARIF_SCHEMA_URI: Final = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
INFORMATION_URI: Final = "https://github.com/policylang/policylang"
"""The project's home page: ``tool.driver.informationUri``."""
DOCS_BASE_URI: Final = f"{INFORMATION_URI}/blob/main/"
"""Prefix of each rule's ``helpUri``, followed by the docs path (``docs/diagnostics.md#pl211``)."""
SRCROOT: Final = "%SRCROOT%"
"""The ``uriBaseId`` of every relative file location: the directory the tool ran in."""

Level = Literal["error", "warning", "note"]

_LEVELS: Final[dict[Severity, Level]] = {
    Severity.ERROR: "error",
    Severity.WARNING: "warning",
    Severity.INFO: "note",
}

_Json = dict[str, object]


@dataclass(frozen=True, slots=True)
class Notification:
    """A problem with the run itself rather than with a policy: a file that cannot be read."""

    message: str
    path: str | None = None
    level: Level = "error"


def artifact_uri(path: str, root: str | None = None) -> tuple[str, str | None]:
    """Return ``(uri, uriBaseId)`` for a file path as given on the command line.

    A file inside ``root`` (default: the current directory) gets a percent-encoded
    relative URI with forward slashes and the base id ``%SRCROOT%``; any other file
    gets an absolute ``file://`` URI and no base id.
    """
    base = os.path.abspath(root if root is not None else os.curdir)
    absolute = os.path.normpath(os.path.join(base, path))
    try:
        relative = os.path.relpath(absolute, base)
    except ValueError:  # Windows: another drive
        relative = os.pardir
    if relative != os.pardir and not relative.startswith(os.pardir + os.sep):
        return urllib.parse.quote(PurePath(relative).as_posix(), safe="/"), SRCROOT
    return Path(absolute).as_uri(), None


class _Artifacts:
    """The run's ``artifacts`` array, built as files are referenced."""

    def __init__(self, root: str | None) -> None:
        self.root = root
        self.index: dict[str, int] = {}
        self.items: list[_Json] = []

    def location(self, path: str) -> _Json:
        """An ``artifactLocation`` for ``path``, registering the artifact on first use."""
        uri, base_id = artifact_uri(path, self.root)
        location: _Json = {"uri": uri}
        if base_id is not None:
            location["uriBaseId"] = base_id
        if path not in self.index:
            self.index[path] = len(self.items)
            self.items.append(
                {
                    "location": dict(location),
                    "roles": ["analysisTarget"],
                    "sourceLanguage": "policylang",
                }
            )
        location["index"] = self.index[path]
        return location


def _region(source: SourceFile, span: Span) -> _Json:
    size = len(source.text)
    start = min(span.start, size)
    end = max(start, min(span.end, size))
    start_line, start_column = source.line_col(start)
    end_line, end_column = source.line_col(end)
    return {
        "startLine": start_line,
        "startColumn": start_column,
        "endLine": end_line,
        "endColumn": end_column,
    }


def _physical(artifact: _Json, source: SourceFile | None, span: Span) -> _Json:
    physical: _Json = {"artifactLocation": artifact}
    if source is not None:
        physical["region"] = _region(source, span)
    return physical


def _message_text(diagnostic: Diagnostic) -> str:
    # The first paragraph is the one-line message, which viewers show as the title.
    paragraphs = [diagnostic.message]
    paragraphs += [f"note: {note}" for note in diagnostic.notes]
    if diagnostic.help is not None:
        paragraphs.append(f"help: {diagnostic.help}")
    return "\n\n".join(paragraphs)


def _related(
    diagnostic: Diagnostic, files: _Artifacts, sources: Mapping[str, SourceFile]
) -> list[_Json]:
    """The secondary labels as ``relatedLocations``, each in the file it points into."""
    related: list[_Json] = []
    seen: set[tuple[str, Span, str]] = set()
    for label in diagnostic.secondary:
        path = label.path_or(diagnostic.path)
        key = (path, label.span, label.message)
        if key in seen:  # relatedLocations must be unique
            continue
        seen.add(key)
        location: _Json = {
            "id": len(related) + 1,
            "physicalLocation": _physical(files.location(path), sources.get(path), label.span),
        }
        if label.message:
            location["message"] = {"text": label.message}
        related.append(location)
    return related


def _fixes(suggestions: Sequence[Suggestion], artifact: _Json, source: SourceFile) -> list[_Json]:
    fixes: list[_Json] = []
    seen: set[Suggestion] = set()
    for suggestion in suggestions:
        if suggestion in seen:  # fixes must be unique
            continue
        seen.add(suggestion)
        replacement: _Json = {
            "deletedRegion": _region(source, suggestion.span),
            "insertedContent": {"text": suggestion.replacement},
        }
        fixes.append(
            {
                "description": {"text": suggestion.message},
                "artifactChanges": [{"artifactLocation": artifact, "replacements": [replacement]}],
                "properties": {"applicability": suggestion.applicability.value},
            }
        )
    return fixes


def _rule(code_id: str) -> _Json:
    code = lookup(code_id)
    return {
        "id": code.id,
        "name": code.name,
        "shortDescription": {"text": code.summary},
        "helpUri": DOCS_BASE_URI + code.docs_path,
        "defaultConfiguration": {"level": _LEVELS[code.severity]},
        "properties": {"tags": [code.phase]},
    }


def sarif_log(
    diagnostics: Sequence[Diagnostic],
    sources: Mapping[str, SourceFile],
    *,
    tool_version: str,
    root: str | None = None,
    artifacts: Sequence[str] = (),
    execution_successful: bool = True,
    exit_code: int | None = None,
    notifications: Sequence[Notification] = (),
) -> _Json:
    """Build the SARIF log as plain JSON data (see :func:`render_sarif`)."""
    files = _Artifacts(root)
    for path in (*artifacts, *sources):
        files.location(path)

    used = {lookup(diagnostic.code).id for diagnostic in diagnostics}  # raises if unregistered
    rule_ids = [code for code in CODES if code in used]  # in registry order
    rule_index = {code: index for index, code in enumerate(rule_ids)}

    results: list[_Json] = []
    for diagnostic in diagnostics:
        source = sources.get(diagnostic.path)
        artifact = files.location(diagnostic.path)
        primary: _Json = {"physicalLocation": _physical(artifact, source, diagnostic.span)}
        if diagnostic.primary.message:
            primary["message"] = {"text": diagnostic.primary.message}
        result: _Json = {
            "ruleId": diagnostic.code,
            "ruleIndex": rule_index[diagnostic.code],
            "level": _LEVELS[diagnostic.severity],
            "message": {"text": _message_text(diagnostic)},
            "locations": [primary],
        }
        related = _related(diagnostic, files, sources)
        if related:
            result["relatedLocations"] = related
        if source is not None and diagnostic.suggestions:
            result["fixes"] = _fixes(diagnostic.suggestions, artifact, source)
        results.append(result)

    invocation: _Json = {"executionSuccessful": execution_successful}
    if exit_code is not None:
        invocation["exitCode"] = exit_code
    if notifications:
        notes: list[_Json] = []
        for notification in notifications:
            note: _Json = {"level": notification.level, "message": {"text": notification.message}}
            if notification.path is not None:
                location = {"artifactLocation": files.location(notification.path)}
                note["locations"] = [{"physicalLocation": location}]
            notes.append(note)
        invocation["toolExecutionNotifications"] = notes

    driver: _Json = {
        "name": "policylang",
        "version": tool_version,
        "semanticVersion": tool_version,
        "informationUri": INFORMATION_URI,
        "rules": [_rule(code) for code in rule_ids],
    }
    run: _Json = {
        "tool": {"driver": driver},
        "invocations": [invocation],
        "columnKind": "unicodeCodePoints",
        "artifacts": files.items,
        "results": results,
    }
    return {"$schema": SARIF_SCHEMA_URI, "version": SARIF_VERSION, "runs": [run]}


def render_sarif(
    diagnostics: Sequence[Diagnostic],
    sources: Mapping[str, SourceFile],
    *,
    tool_version: str,
    root: str | None = None,
    artifacts: Sequence[str] = (),
    execution_successful: bool = True,
    exit_code: int | None = None,
    notifications: Sequence[Notification] = (),
) -> str:
    """Render diagnostics as one SARIF 2.1.0 log (JSON, ASCII-only, ending in a newline).

    ``artifacts`` lists every file analysed, in order, including clean ones; files in
    ``sources`` and in diagnostics (their labels' files too) are added after them.
    ``execution_successful`` is false when the run itself failed (an unreadable file,
    an internal error), not when it found problems; ``notifications`` describe such
    failures. ``exit_code`` is recorded in the invocation when given.
    """
    log = sarif_log(
        diagnostics,
        sources,
        tool_version=tool_version,
        root=root,
        artifacts=artifacts,
        execution_successful=execution_successful,
        exit_code=exit_code,
        notifications=notifications,
    )
    return json.dumps(log, indent=2, ensure_ascii=True) + "\n"
