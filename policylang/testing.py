"""Policy test cases: the ``.cases.yaml`` format, running cases, coverage and reports.

A test file lists conversations and what a policy should decide for each (see
docs/testing.md). This module reads such files with the position of every value,
so a mistake is reported as ``path:line:col`` (codes PL805 to PL808); runs each case
through a compiled :class:`~policylang.runtime.Policy` one message at a time,
keeping a trace of what matched and the counters after every message; measures
which declarations and detectors the cases exercised; renders results as text,
JSON and JUnit XML; and writes new cases recorded from transcripts.

Typical use (what ``policylang test`` does)::

    case_file, errors = parse_case_file("policies/default.cases.yaml")
    policy = load_policy(case_file.policy_path, DiagnosticSink(), tenant=case_file.tenant_path)
    errors += check_names(case_file, policy)
    results = [run_case(policy, case, case_file) for case in case_file.cases]
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from policylang.runtime import (
    AllOf,
    Annotation,
    AnyOf,
    Decision,
    Detector,
    Event,
    Evidence,
    Keywords,
    Message,
    Not,
    Outcome,
    Pattern,
    Policy,
    Score,
)
from policylang.suggest import did_you_mean
from policylang.transcripts import Record, RecordError, iter_records

__all__ = [
    "CASES_SUFFIX",
    "COVERAGE_KINDS",
    "EXPECTATION_KEYS",
    "AppendPlan",
    "Case",
    "CaseFile",
    "CaseFileError",
    "CaseResult",
    "CoverageItem",
    "Discovery",
    "Expectation",
    "Location",
    "Match",
    "Mismatch",
    "PolicyCoverage",
    "Step",
    "SuiteResult",
    "TranscriptCache",
    "case_text",
    "cases_path_for",
    "check_expectations",
    "check_names",
    "discover",
    "find_record",
    "not_run",
    "parse_case_file",
    "plan_append",
    "read_policy_key",
    "render_coverage",
    "render_human",
    "render_json",
    "render_junit",
    "render_result",
    "render_trace",
    "run_case",
    "summary_line",
]

CASES_SUFFIX: Final = ".cases.yaml"
"""A test file named ``<stem>.cases.yaml`` tests ``<stem>.policy`` beside it."""

# Codes registered in policylang.codes (PL8xx: test and transcript outcomes).
INVALID_YAML: Final = "PL805"
INVALID_TEST_FILE: Final = "PL806"
UNKNOWN_NAME: Final = "PL807"
TRANSCRIPT_UNAVAILABLE: Final = "PL808"
EXPECTATION_MISMATCH: Final = "PL809"

ROLES: Final = ("user", "assistant", "system", "tool")
EXPECTATION_KEYS: Final = (
    "outcome",
    "at",
    "rule",
    "category",
    "reason",
    "never_ends",
    "warns_at",
    "escalates",
    "protection",
    "blocked",
    "post_termination",
)
"""Every key ``expect`` may have, in the order reports list them."""

_TOP_KEYS: Final = ("policy", "tenant", "cases")
_CASE_KEYS: Final = ("name", "conversation", "transcript", "each", "expect")
_TRANSCRIPT_KEYS: Final = ("file", "id")
_OUTCOMES: Final = {outcome.value: outcome for outcome in Outcome}

_STR: Final = "tag:yaml.org,2002:str"
_INT: Final = "tag:yaml.org,2002:int"
_BOOL: Final = "tag:yaml.org,2002:bool"
_NULL: Final = "tag:yaml.org,2002:null"
_MERGE: Final = "tag:yaml.org,2002:merge"

_PLACEHOLDER: Final = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WHOLE_PLACEHOLDER: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ROW_NAME_WIDTH: Final = 50
_PREVIEW_WIDTH: Final = 100


# --------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class Location:
    """A 1-based line and column (in code points) in a file."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class CaseFileError:
    """A problem with a test file: where it is, its code, and a one-line message."""

    file: str
    line: int
    column: int
    code: str
    message: str

    @property
    def name(self) -> str:
        """The code's kebab-case name from the registry, e.g. ``test-file-invalid``."""
        from policylang.codes import lookup

        return lookup(self.code).name

    def located(self) -> str:
        """One line for humans and problem matchers: ``path:line:col: error[PL8nn] message``."""
        return f"{self.file}:{self.line}:{self.column}: error[{self.code}] {self.message}"

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return {
            "code": self.code,
            "name": self.name,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
        }


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a case expects; ``None`` means "not checked". All given ones must hold.

    ``outcome``, ``at``, ``rule``, ``category`` and ``reason`` are compared with the
    decision (the deciding event). ``never_ends`` (``False``: the conversation ends),
    ``warns_at``, ``escalates``, ``protection`` and ``blocked`` look at every event.
    ``locations`` says where each key was written.
    """

    outcome: Outcome | None = None
    at: int | None = None
    rule: str | None = None
    category: str | None = None
    reason: str | None = None
    never_ends: bool | None = None
    warns_at: int | None = None
    escalates: bool | None = None
    protection: str | None = None
    blocked: str | None = None
    post_termination: tuple[int, ...] | None = None
    locations: Mapping[str, Location] = field(default_factory=dict, compare=False)

    def given(self) -> dict[str, object]:
        """The expectations that were written, JSON-ready, in :data:`EXPECTATION_KEYS` order."""
        found: dict[str, object] = {}
        for key in EXPECTATION_KEYS:
            value = getattr(self, key)
            if value is None:
                continue
            if isinstance(value, Outcome):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            found[key] = value
        return found

    def describe(self) -> str:
        """The expectations in words: ``outcome end, at 4, rule end_on_request``."""
        return ", ".join(_describe_expectation(key, value) for key, value in self.given().items())


@dataclass(frozen=True, slots=True)
class Case:
    """One test case: a conversation and what the policy should decide.

    ``source`` is ``file:line`` of the transcript record for a ``transcript`` case.
    A table-driven case (``each``) becomes one :class:`Case` per row, located at
    its row.
    """

    name: str
    location: Location
    messages: tuple[Message, ...]
    expect: Expectation
    source: str | None = None


@dataclass(frozen=True, slots=True)
class CaseFile:
    """A loaded test file: the policy it tests and its cases, in file order."""

    path: str
    policy_path: str
    cases: tuple[Case, ...]
    tenant_path: str | None = None
    """A tenant file applied to the policy for these cases (``tenant:``), if any."""


# --------------------------------------------------------------------- discovery


@dataclass(slots=True)
class Discovery:
    """What ``policylang test PATHS`` found: test files, policies and problems."""

    case_files: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _walk(directory: str, suffixes: tuple[str, ...]) -> Iterator[str]:
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.endswith(suffixes):
                yield os.path.normpath(os.path.join(root, name))


def cases_path_for(policy_path: str) -> str:
    """The test file that goes with a policy: ``x.policy`` -> ``x.cases.yaml`` beside it."""
    stem, _ = os.path.splitext(policy_path)
    return stem + CASES_SUFFIX


def discover(paths: Sequence[str]) -> Discovery:
    """Find test files and policies under ``paths`` (files or directories).

    A directory is searched recursively (hidden directories skipped) for
    ``*.cases.yaml`` and ``*.policy`` files. A ``.policy`` file given by name
    brings in its ``<stem>.cases.yaml``, and it is a problem if that does not
    exist. Any other file is taken as a test file. Each file is listed once, in
    the order found.
    """
    found = Discovery()
    seen: set[str] = set()

    def add(target: list[str], path: str) -> None:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            target.append(path)

    for path in paths:
        if os.path.isdir(path):
            for item in _walk(path, (CASES_SUFFIX, ".policy")):
                add(found.case_files if item.endswith(CASES_SUFFIX) else found.policies, item)
        elif path.endswith(".policy"):
            add(found.policies, path)
            cases = cases_path_for(path)
            if os.path.isfile(cases):
                add(found.case_files, cases)
            else:
                found.problems.append(
                    f"`{path}` has no test file (expected `{cases}`; "
                    "`policylang test --record` can start one)"
                )
        else:
            add(found.case_files, path)
    return found


# --------------------------------------------------------------------- transcripts


class TranscriptCache:
    """Transcript files read for ``transcript:`` cases, each read at most once."""

    def __init__(self) -> None:
        """An empty cache."""
        self._files: dict[str, dict[str, Record | RecordError]] = {}

    def lookup(self, path: str, conversation_id: str) -> Record | RecordError | None:
        """The record with this id (or the invalid record that claims it), else ``None``.

        Raises ``OSError`` when the file cannot be read.
        """
        return self._records(path).get(conversation_id)

    def ids(self, path: str) -> list[str]:
        """Every conversation id in the file (after a successful :meth:`lookup`)."""
        return list(self._files.get(os.path.realpath(path), {}))

    def _records(self, path: str) -> dict[str, Record | RecordError]:
        key = os.path.realpath(path)
        records = self._files.get(key)
        if records is None:
            records = {}
            for result in iter_records(path):
                if isinstance(result, Record):
                    records.setdefault(result.conversation.id, result)
                elif result.conversation_id is not None:
                    records.setdefault(result.conversation_id, result)
            self._files[key] = records
        return records


def find_record(paths: Sequence[str], conversation_id: str) -> Record | RecordError | None:
    """The first conversation with ``conversation_id`` in the transcript files.

    An invalid record that carries the id is returned as its :class:`RecordError`.
    Raises ``OSError`` when a file cannot be read.
    """
    for path in paths:
        for result in iter_records(path):
            if isinstance(result, Record):
                if result.conversation.id == conversation_id:
                    return result
            elif result.conversation_id == conversation_id:
                return result
    return None


# --------------------------------------------------------------------- reading YAML


def _location(path: str, node: Node) -> Location:
    mark = node.start_mark
    if mark is None:
        return Location(path, 1, 1)
    return Location(path, mark.line + 1, mark.column + 1)


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL


def _bare_placeholder(node: Node) -> str | None:
    """``{item}`` written without quotes, which YAML reads as the mapping ``{item: null}``."""
    if isinstance(node, MappingNode) and node.flow_style and len(node.value) == 1:
        key, value = node.value[0]
        if (
            isinstance(key, ScalarNode)
            and key.style is None
            and _WHOLE_PLACEHOLDER.fullmatch("{" + str(key.value) + "}")
            and isinstance(value, ScalarNode)
            and value.tag == _NULL
            and value.value == ""
        ):
            return str(key.value)
    return None


def _kind_of(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "empty"
    return f"`{node.value}`"


_Fields: TypeAlias = dict[str, tuple[ScalarNode, Node]]


class _Reader:
    """Typed access to a composed YAML tree; every problem becomes a located error."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.errors: list[CaseFileError] = []
        self.constructor = SafeConstructor()

    def at(self, node: Node) -> Location:
        return _location(self.path, node)

    def error(self, node: Node, message: str, code: str = INVALID_TEST_FILE) -> None:
        where = self.at(node)
        self.errors.append(CaseFileError(self.path, where.line, where.column, code, message))

    def fields(
        self,
        node: Node,
        what: str,
        allowed: Sequence[str],
        required: Sequence[str] = (),
    ) -> _Fields | None:
        """A mapping's keys and values; unknown, duplicate and missing keys are errors."""
        if not isinstance(node, MappingNode):
            self.error(node, f"{what} must be a mapping of keys to values, not {_kind_of(node)}")
            return None
        try:
            self.constructor.flatten_mapping(node)  # `<<: *anchor` merge keys
        except yaml.MarkedYAMLError as exc:
            self.error(node, f"invalid merge key: {exc.problem}", INVALID_YAML)
            return None
        result: _Fields = {}
        for key, value in node.value:
            if not isinstance(key, ScalarNode) or key.tag == _NULL:
                self.error(key, f"a key in {what} must be a name, not {_kind_of(key)}")
                continue
            name = str(key.value)
            if name not in allowed:
                hint = did_you_mean(name, allowed)
                expected = ", ".join(f"`{item}`" for item in allowed)
                suffix = f" (did you mean `{hint}`?)" if hint else f"; expected one of {expected}"
                self.error(key, f"unknown key `{name}` in {what}{suffix}")
                continue
            if name in result:
                first = self.at(result[name][0]).line
                self.error(key, f"duplicate key `{name}` in {what} (first on line {first})")
                continue
            result[name] = (key, value)
        missing = [name for name in required if name not in result]
        for name in missing:
            self.error(node, f"{what} is missing `{name}`")
        return result

    def text(self, node: Node, what: str) -> str | None:
        """A scalar's text as written (so ``yes`` stays ``yes``); empty values are errors."""
        if isinstance(node, ScalarNode) and node.tag != _NULL:
            return str(node.value)
        if _bare_placeholder(node) is not None:
            self.error(
                node,
                f"{what} must be text; to use a placeholder, put it in quotes: "
                f'"{{{_bare_placeholder(node)}}}" (placeholders need `each`)',
            )
        elif _is_null(node):
            self.error(node, f"{what} is empty")
        else:
            self.error(node, f"{what} must be text, not {_kind_of(node)}")
        return None

    def name(self, node: Node, what: str) -> str | None:
        """A non-empty name (rule, category, ...)."""
        value = self.text(node, what)
        if value is not None and not value.strip():
            self.error(node, f"{what} is empty")
            return None
        return value

    def index(self, node: Node, what: str) -> int | None:
        """A message index: a whole number, 0 or more."""
        if isinstance(node, ScalarNode) and node.tag == _INT:
            value = self.constructor.construct_object(node)
            if isinstance(value, int) and value >= 0:
                return value
        self.error(
            node,
            f"{what} must be a message index (a whole number, 0 or more), not {_kind_of(node)}",
        )
        return None

    def boolean(self, node: Node, what: str) -> bool | None:
        if isinstance(node, ScalarNode) and node.tag == _BOOL:
            return bool(self.constructor.construct_object(node))
        self.error(node, f"{what} must be `true` or `false`, not {_kind_of(node)}")
        return None

    def items(self, node: Node, what: str) -> list[Node] | None:
        if isinstance(node, SequenceNode):
            return list(node.value)
        self.error(node, f"{what} must be a list, not {_kind_of(node)}")
        return None

    def data(self, node: Node, what: str) -> object:
        """Plain data (for ``metadata``)."""
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            self.error(node, f"{what}: {exc.problem}", INVALID_YAML)
            return None
        except TypeError as exc:  # an unhashable key, say
            self.error(node, f"{what}: {exc}", INVALID_YAML)
            return None


# --------------------------------------------------------------------- table-driven cases


class _Row:
    """One row of ``each``: substitutes ``{item}`` / ``{field}`` placeholders in nodes."""

    def __init__(self, reader: _Reader, node: Node, number: int, values: Mapping[str, Node]):
        self.reader = reader
        self.node = node
        self.number = number
        self.values = values
        self.used = False

    def apply(self, node: Node) -> Node:
        bare = _bare_placeholder(node)
        if bare is not None:
            return self._value(bare, node)
        if isinstance(node, MappingNode):
            return MappingNode(
                node.tag,
                [(self._key(key), self.apply(value)) for key, value in node.value],
                node.start_mark,
                node.end_mark,
                node.flow_style,
            )
        if isinstance(node, SequenceNode):
            return SequenceNode(
                node.tag,
                [self.apply(item) for item in node.value],
                node.start_mark,
                node.end_mark,
                node.flow_style,
            )
        if not isinstance(node, ScalarNode) or node.tag != _STR:
            return node
        text = str(node.value)
        if "{" not in text and "}" not in text:
            return node
        whole = _WHOLE_PLACEHOLDER.fullmatch(text)
        if whole is not None:
            return self._value(whole.group(1), node)

        def replace(match: re.Match[str]) -> str:
            token = match.group(0)
            if token == "{{":
                return "{"
            if token == "}}":
                return "}"
            value = self._value(match.group(1), node)
            if isinstance(value, ScalarNode):
                return str(value.value)
            self.reader.error(
                node,
                f"placeholder `{token}` is {_kind_of(value)} in row {self.number}; "
                "a list or mapping can only be used as a whole value",
            )
            return token

        return ScalarNode(
            _STR, _PLACEHOLDER.sub(replace, text), node.start_mark, node.end_mark, node.style
        )

    def _key(self, node: Node) -> Node:
        # A placeholder in a key (`scores: {"{key}": 0.9}`) must give text.
        if not isinstance(node, ScalarNode) or node.tag != _STR:
            return node
        value = self.apply(node)
        if isinstance(value, ScalarNode):
            return ScalarNode(_STR, str(value.value), node.start_mark, node.end_mark, node.style)
        self.reader.error(node, "a placeholder in a key must stand for text")
        return node

    def _value(self, name: str, where: Node) -> Node:
        value = self.values.get(name)
        if value is None:
            known = ", ".join(f"`{{{key}}}`" for key in self.values) or "none"
            self.reader.error(
                where,
                f"unknown placeholder `{{{name}}}` for row {self.number} "
                f"(its placeholders: {known}; write `{{{{` for a literal brace)",
            )
            return where
        self.used = True
        return value


def _row_label(row: Node) -> str:
    if isinstance(row, ScalarNode):
        text = " ".join(str(row.value).split())
        if len(text) > _ROW_NAME_WIDTH:
            text = text[: _ROW_NAME_WIDTH - 3] + "..."
        return text
    return ""


# --------------------------------------------------------------------- parsing


def _decode(path: str, data: bytes) -> tuple[str | None, CaseFileError | None]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8", errors="replace")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        return None, CaseFileError(
            path, line, column, INVALID_YAML, "the file is not valid UTF-8 (save it as UTF-8)"
        )
    return text.removeprefix("\ufeff"), None


_YAML_HINTS: Final = (
    ("found character '\\t'", "a tab character: indent with spaces"),
    ("expected <block end>", "this line is indented differently from the lines above it"),
    ("mapping values are not allowed here", "a `: ` inside unquoted text: put the text in quotes"),
    ("found unexpected end of stream", "the file ends inside a quoted text: close the quote"),
    ("found undefined alias", "an `*alias` without a matching `&anchor`"),
)


def _yaml_problem(problem: str) -> str:
    for needle, hint in _YAML_HINTS:
        if needle in problem:
            return hint
    return problem


def _compose(path: str, text: str) -> tuple[Node | None, CaseFileError | None]:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader), None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = _yaml_problem(exc.problem or "cannot be read")
        if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
            problem += f" ({exc.context} on line {exc.context_mark.line + 1})"
        return None, CaseFileError(path, line, column, INVALID_YAML, f"invalid YAML: {problem}")
    except yaml.YAMLError as exc:
        return None, CaseFileError(path, 1, 1, INVALID_YAML, f"invalid YAML: {exc}")


def _dedupe(errors: Iterable[CaseFileError]) -> list[CaseFileError]:
    # A mistake in a table-driven case is found once per row: report it once.
    seen: set[CaseFileError] = set()
    unique: list[CaseFileError] = []
    for error in errors:
        if error not in seen:
            seen.add(error)
            unique.append(error)
    return sorted(unique, key=lambda e: (e.line, e.column, e.code))


def read_policy_key(path: str, text: str) -> tuple[str | None, CaseFileError | None]:
    """The policy a test file names with ``policy:`` (as written), if it names one."""
    root, error = _compose(path, text)
    if error is not None:
        return None, error
    if isinstance(root, MappingNode):
        for key, value in root.value:
            if (
                isinstance(key, ScalarNode)
                and key.value == "policy"
                and isinstance(value, ScalarNode)
                and value.tag != _NULL
            ):
                return str(value.value), None
    return None, None


def _resolve(base_file: str, relative: str) -> str:
    if os.path.isabs(relative):
        return relative
    return os.path.normpath(os.path.join(os.path.dirname(base_file), relative))


def parse_case_file(
    path: str, transcripts: TranscriptCache | None = None
) -> tuple[CaseFile | None, list[CaseFileError]]:
    """Read a test file: its policy path and cases, or located errors.

    Checks the structure (keys, types, placeholders, message indices) and loads
    ``transcript:`` conversations; rule, category and other names are checked
    against the policy by :func:`check_names`. Returns ``None`` for the file when
    it has any error. Raises ``OSError`` when the file cannot be read.
    """
    with open(path, "rb") as handle:
        data = handle.read()
    text, decode_error = _decode(path, data)
    if decode_error is not None or text is None:
        return None, [decode_error] if decode_error is not None else []
    root, yaml_error = _compose(path, text)
    if yaml_error is not None:
        return None, [yaml_error]
    reader = _Reader(path)
    if root is None:
        error = CaseFileError(
            path, 1, 1, INVALID_TEST_FILE, "the test file is empty; it needs a `cases:` list"
        )
        return None, [error]
    top = reader.fields(root, "the test file", _TOP_KEYS, required=("cases",))
    if top is None:
        return None, _dedupe(reader.errors)
    policy_path = _policy_of(reader, root, top)
    tenant_path = _tenant_of(reader, top)
    parser = _CaseParser(reader, transcripts or TranscriptCache())
    cases: list[Case] = []
    if "cases" in top:
        cases_node = top["cases"][1]
        items = [] if _is_null(cases_node) else reader.items(cases_node, "`cases`")
        for item in items or []:
            cases.extend(parser.cases(item))
    names: dict[str, Case] = {}
    for case in cases:
        first = names.get(case.name)
        if first is not None:
            reader.errors.append(
                CaseFileError(
                    path,
                    case.location.line,
                    case.location.column,
                    INVALID_TEST_FILE,
                    f"duplicate case name `{case.name}` (first on line {first.location.line})",
                )
            )
        else:
            names[case.name] = case
    errors = _dedupe(reader.errors)
    if errors or policy_path is None:
        return None, errors
    return CaseFile(path, policy_path, tuple(cases), tenant_path), []


def _tenant_of(reader: _Reader, top: _Fields) -> str | None:
    if "tenant" not in top:
        return None
    node = top["tenant"][1]
    written = reader.name(node, "`tenant`")
    if written is None:
        return None
    tenant = _resolve(reader.path, written)
    if not os.path.isfile(tenant):
        reader.error(node, f"tenant file `{tenant}` does not exist")
        return None
    return tenant


def _policy_of(reader: _Reader, root: Node, top: _Fields) -> str | None:
    path = reader.path
    if "policy" in top:
        node = top["policy"][1]
        written = reader.name(node, "`policy`")
        if written is None:
            return None
        policy = _resolve(path, written)
        if not os.path.isfile(policy):
            reader.error(node, f"policy file `{policy}` does not exist")
            return None
        return policy
    if not path.endswith(CASES_SUFFIX):
        reader.error(
            root,
            f"the test file does not say which policy it tests: add `policy: NAME.policy`, "
            f"or name the file `NAME{CASES_SUFFIX}` after its policy",
        )
        return None
    policy = path[: -len(CASES_SUFFIX)] + ".policy"
    if not os.path.isfile(policy):
        reader.error(
            root,
            f"no policy for this test file: `{policy}` does not exist "
            "(name the policy with `policy:`)",
        )
        return None
    return policy


class _CaseParser:
    """Turns ``cases`` items into :class:`Case` objects (one per ``each`` row)."""

    def __init__(self, reader: _Reader, transcripts: TranscriptCache) -> None:
        self.reader = reader
        self.transcripts = transcripts

    def cases(self, node: Node) -> list[Case]:
        reader = self.reader
        fields = reader.fields(node, "a case", _CASE_KEYS, required=("name", "expect"))
        if fields is None:
            return []
        sources = [key for key in ("conversation", "transcript") if key in fields]
        if not sources:
            reader.error(node, "a case needs a `conversation` or a `transcript`")
            return []
        if len(sources) > 1:
            reader.error(
                fields["transcript"][0],
                "a case has a `conversation` or a `transcript`, not both",
            )
            return []
        if "name" not in fields or "expect" not in fields:
            return []
        if "each" not in fields:
            case = self._case(fields, self.reader.at(node), None, "")
            return [case] if case is not None else []
        return self._table(fields)

    def _table(self, fields: _Fields) -> list[Case]:
        reader = self.reader
        each_key, each_node = fields["each"]
        rows = reader.items(each_node, "`each`")
        if rows is None:
            return []
        if not rows:
            reader.error(each_node, "`each` has no rows")
            return []
        cases: list[Case] = []
        used = False
        for number, row_node in enumerate(rows, start=1):
            values: dict[str, Node]
            if isinstance(row_node, ScalarNode) and row_node.tag != _NULL:
                values = {"item": row_node}
            elif isinstance(row_node, MappingNode):
                row_fields = self._row_fields(row_node)
                if row_fields is None:
                    continue
                values = row_fields
            else:
                reader.error(
                    row_node,
                    "a row of `each` must be text or a mapping of fields, "
                    f"not {_kind_of(row_node)}",
                )
                continue
            row = _Row(reader, row_node, number, values)
            case = self._case(fields, reader.at(row_node), row, _row_label(row_node))
            used = used or row.used
            if case is not None:
                cases.append(case)
        if cases and not used:
            reader.error(
                each_key,
                "`each` rows are never used: write `{item}` (or `{field}` for a mapping row) "
                "in the case's conversation, name or expect",
            )
        return cases

    def _row_fields(self, node: MappingNode) -> dict[str, Node] | None:
        values: dict[str, Node] = {}
        for key, value in node.value:
            if not isinstance(key, ScalarNode) or not _WHOLE_PLACEHOLDER.fullmatch(
                "{" + str(key.value) + "}"
            ):
                self.reader.error(key, "a field of a row must be a name (letters, digits and `_`)")
                return None
            name = str(key.value)
            if name in values:
                self.reader.error(key, f"duplicate field `{name}` in a row")
                return None
            values[name] = value
        return values

    def _case(
        self, fields: _Fields, location: Location, row: _Row | None, label: str
    ) -> Case | None:
        reader = self.reader

        def node(key: str) -> Node:
            value = fields[key][1]
            return row.apply(value) if row is not None else value

        name_node = fields["name"][1]
        named_by_row = False
        if row is not None:
            used_before, row.used = row.used, False
            name_node = row.apply(name_node)
            named_by_row, row.used = row.used, used_before or row.used
        name = reader.name(name_node, "`name`")
        messages: tuple[Message, ...] | None
        source: str | None = None
        if "conversation" in fields:
            messages = self._conversation(node("conversation"))
        else:
            messages, source = self._transcript(node("transcript"))
        expect = self._expect(node("expect"), messages)
        if name is None or messages is None or expect is None:
            return None
        if row is not None and not named_by_row:
            name = f"{name} [{label}]" if label else f"{name} [{row.number}]"
        return Case(name, location, messages, expect, source)

    # -- conversations

    def _conversation(self, node: Node) -> tuple[Message, ...] | None:
        reader = self.reader
        items = reader.items(node, "`conversation`")
        if items is None:
            return None
        messages: list[Message] = []
        ok = True
        for item in items:
            message = self._message(item)
            if message is None:
                ok = False
            else:
                messages.append(message)
        return tuple(messages) if ok else None

    def _message(self, node: Node) -> Message | None:
        reader = self.reader
        fields = reader.fields(node, "a message", (*ROLES, "metadata"))
        if fields is None:
            return None
        roles = [key for key in ROLES if key in fields]
        if len(roles) != 1:
            what = "no role" if not roles else "more than one role"
            reader.error(
                node,
                f"a message has {what}: write one of `user:`, `assistant:`, `system:` "
                "or `tool:` followed by its text",
            )
            return None
        role = roles[0]
        content = reader.text(fields[role][1], f"the {role} message")
        metadata: dict[str, object] = {}
        if "metadata" in fields:
            checked = self._metadata(fields["metadata"][1])
            if checked is None:
                return None
            metadata = checked
        if content is None:
            return None
        return Message(role, content, metadata)

    def _metadata(self, node: Node) -> dict[str, object] | None:
        reader = self.reader
        if not isinstance(node, MappingNode):
            reader.error(node, f"`metadata` must be a mapping, not {_kind_of(node)}")
            return None
        value = reader.data(node, "`metadata`")
        if not isinstance(value, dict):
            return None
        ok = True
        for key, item in node.value:
            name = str(key.value) if isinstance(key, ScalarNode) else ""
            if name == "scores":
                scores = value.get("scores")
                if not isinstance(scores, dict) or not all(
                    isinstance(score, int | float) and not isinstance(score, bool)
                    for score in scores.values()
                ):
                    reader.error(
                        item, "`scores` must map classifier names to numbers: {violence: 0.9}"
                    )
                    ok = False
            elif name == "annotations":
                notes = value.get("annotations")
                if not (
                    isinstance(notes, str)
                    or (isinstance(notes, list) and all(isinstance(n, str) for n in notes))
                ):
                    reader.error(item, "`annotations` must be a list of labels: [redirect]")
                    ok = False
        return {str(key): item for key, item in value.items()} if ok else None

    def _transcript(self, node: Node) -> tuple[tuple[Message, ...] | None, str | None]:
        reader = self.reader
        fields = reader.fields(node, "`transcript`", _TRANSCRIPT_KEYS, required=_TRANSCRIPT_KEYS)
        if fields is None or "file" not in fields or "id" not in fields:
            return None, None
        file_node, id_node = fields["file"][1], fields["id"][1]
        written = reader.name(file_node, "the transcript `file`")
        conversation_id = reader.name(id_node, "the transcript `id`")
        if written is None or conversation_id is None:
            return None, None
        path = _resolve(reader.path, written)
        try:
            found = self.transcripts.lookup(path, conversation_id)
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            reader.error(file_node, f"cannot read `{path}`: {reason}", TRANSCRIPT_UNAVAILABLE)
            return None, None
        if found is None:
            hint = did_you_mean(conversation_id, self.transcripts.ids(path))
            suffix = f" (did you mean `{hint}`?)" if hint else ""
            reader.error(
                id_node,
                f"no conversation `{conversation_id}` in `{path}`{suffix}",
                TRANSCRIPT_UNAVAILABLE,
            )
            return None, None
        if isinstance(found, RecordError):
            reader.error(
                id_node,
                f"conversation `{conversation_id}` in `{path}` is invalid: "
                f"{found.file}:{found.line}: {found.reason}",
                TRANSCRIPT_UNAVAILABLE,
            )
            return None, None
        messages = tuple(
            Message(m.role, m.content, dict(m.metadata)) for m in found.conversation.messages
        )
        return messages, f"{found.file}:{found.line}"

    # -- expectations

    def _expect(self, node: Node, messages: Sequence[Message] | None) -> Expectation | None:
        reader = self.reader
        fields = reader.fields(node, "`expect`", EXPECTATION_KEYS)
        if fields is None:
            return None
        if not fields:
            reader.error(node, "`expect` names no expectation (for example `outcome: continue`)")
            return None
        values: dict[str, object] = {}
        locations: dict[str, Location] = {}
        ok = True
        for key, (_, value_node) in fields.items():
            value = self._expectation(key, value_node, messages)
            if value is None:
                ok = False
                continue
            values[key] = value
            locations[key] = reader.at(value_node)
        if not ok:
            return None
        return _build_expectation(values, locations)

    def _expectation(self, key: str, node: Node, messages: Sequence[Message] | None) -> object:
        reader = self.reader
        what = f"`{key}`"
        if key == "outcome":
            text = reader.name(node, what)
            if text is None:
                return None
            outcome = _OUTCOMES.get(text)
            if outcome is None:
                hint = did_you_mean(text, _OUTCOMES)
                suffix = f" (did you mean `{hint}`?)" if hint else ""
                choices = ", ".join(_OUTCOMES)
                reader.error(node, f"unknown outcome `{text}`{suffix}; expected one of {choices}")
            return outcome
        if key in ("at", "warns_at"):
            index = reader.index(node, what)
            if index is not None and not self._user_index(node, what, index, messages):
                return None
            return index
        if key in ("never_ends", "escalates"):
            return reader.boolean(node, what)
        if key == "post_termination":
            items = reader.items(node, what)
            if items is None:
                return None
            indices: list[int] = []
            for item in items:
                index = reader.index(item, "an index in `post_termination`")
                if index is None or not self._user_index(
                    item, "`post_termination`", index, messages
                ):
                    return None
                indices.append(index)
            return tuple(indices)
        return reader.name(node, what)

    def _user_index(
        self, node: Node, what: str, index: int, messages: Sequence[Message] | None
    ) -> bool:
        if messages is None:
            return True  # the conversation has its own error
        if index >= len(messages):
            self.reader.error(
                node,
                f"{what} is {index}, but the conversation has only {len(messages)} messages "
                f"(indices 0 to {len(messages) - 1})",
            )
            return False
        role = messages[index].role
        if role != "user":
            article = "an" if role == "assistant" else "a"
            self.reader.error(
                node,
                f"{what} is {index}, which is {article} {role} message; "
                "decisions are made at user messages",
            )
            return False
        return True


def _build_expectation(values: Mapping[str, object], locations: dict[str, Location]) -> Expectation:
    def text(key: str) -> str | None:
        value = values.get(key)
        return value if isinstance(value, str) else None

    def number(key: str) -> int | None:
        value = values.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def flag(key: str) -> bool | None:
        value = values.get(key)
        return value if isinstance(value, bool) else None

    outcome = values.get("outcome")
    post = values.get("post_termination")
    return Expectation(
        outcome=outcome if isinstance(outcome, Outcome) else None,
        at=number("at"),
        rule=text("rule"),
        category=text("category"),
        reason=text("reason"),
        never_ends=flag("never_ends"),
        warns_at=number("warns_at"),
        escalates=flag("escalates"),
        protection=text("protection"),
        blocked=text("blocked"),
        post_termination=tuple(int(i) for i in post) if isinstance(post, tuple) else None,
        locations=locations,
    )


# --------------------------------------------------------------------- names


def check_names(case_file: CaseFile, policy: Policy) -> list[CaseFileError]:
    """Rule, category, reason, protection and blocked-rule names the policy lacks (PL807).

    ``rule`` may name a rule or a protection (a protection decides an escalation);
    ``blocked`` must name an ``end`` rule.
    """
    rules = [rule.name for rule in policy.rules]
    protections = [protection.name for protection in policy.protections]
    end_rules = [rule.name for rule in policy.rules if rule.action is Outcome.END]
    known: dict[str, tuple[str, list[str]]] = {
        "rule": ("rule or protection", rules + protections),
        "category": ("category", [category.name for category in policy.categories]),
        "reason": (
            "reason",
            sorted({r.reason for r in policy.rules} | {p.reason for p in policy.protections}),
        ),
        "protection": ("protection", protections),
        "blocked": ("end rule", end_rules),
    }
    errors: set[CaseFileError] = set()
    for case in case_file.cases:
        for key, (noun, names) in known.items():
            value = getattr(case.expect, key)
            if value is None or value in names:
                continue
            where = case.expect.locations.get(key, case.location)
            if key == "blocked" and value in rules:
                message = f"`{value}` is not an end rule; only end rules are blocked by protections"
            else:
                hint = did_you_mean(value, names)
                suffix = f" (did you mean `{hint}`?)" if hint else ""
                message = f"`{policy.name}` has no {noun} `{value}`{suffix}"
            errors.add(CaseFileError(where.file, where.line, where.column, UNKNOWN_NAME, message))
    return sorted(errors, key=lambda e: (e.line, e.column, e.message))


# --------------------------------------------------------------------- running


@dataclass(frozen=True, slots=True)
class Match:
    """A category, signal or redirect that matched a message, with its evidence."""

    kind: Literal["category", "signal", "redirect"]
    name: str
    evidence: tuple[Evidence, ...]

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return {
            "kind": self.kind,
            "name": self.name,
            "evidence": [item.to_json() for item in self.evidence],
        }


@dataclass(frozen=True, slots=True)
class Step:
    """One message of a replayed case: what matched, the counters after it, its event.

    ``locked`` messages came after an end and were not evaluated.
    """

    index: int
    role: str
    content: str
    matches: tuple[Match, ...]
    counters: Mapping[str, int]
    event: Event | None
    locked: bool = False

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return {
            "message_index": self.index,
            "role": self.role,
            "content": self.content,
            "locked": self.locked,
            "matches": [match.to_json() for match in self.matches],
            "counters": dict(self.counters),
            "event": self.event.to_json() if self.event is not None else None,
        }


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One expectation that did not hold."""

    expectation: str
    expected: object
    actual: object
    message: str

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return {
            "expectation": self.expectation,
            "expected": self.expected,
            "actual": self.actual,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class CaseResult:
    """The result of one case: the decision, the trace and what did not hold.

    ``error`` is set instead when the case could not run (its policy has errors).
    """

    case: Case
    file: str
    policy_path: str
    decision: Decision | None
    trace: tuple[Step, ...]
    mismatches: tuple[Mismatch, ...]
    error: str | None = None

    @property
    def passed(self) -> bool:
        """Whether the case ran and every expectation held."""
        return self.error is None and not self.mismatches

    def headline(self) -> str:
        """Why it failed, in one line (``""`` when it passed)."""
        if self.error is not None:
            return self.error
        return "; ".join(mismatch.message for mismatch in self.mismatches)


def _replay(policy: Policy, case: Case) -> tuple[Decision, tuple[Step, ...]]:
    session = policy.session(case.name)
    steps: list[Step] = []
    for index, message in enumerate(case.messages):
        event = session.observe(message)
        observation = session.last_observation
        matches: list[Match] = []
        locked = False
        if observation is not None:
            locked = observation.locked
            matches.extend(Match("category", n, e) for n, e in observation.categories.items())
            matches.extend(Match("signal", n, e) for n, e in observation.signals.items())
            matches.extend(Match("redirect", n, e) for n, e in observation.redirects.items())
        steps.append(
            Step(
                index,
                message.role,
                message.content,
                tuple(matches),
                session.counters(),
                event,
                locked,
            )
        )
    return session.decision(), tuple(steps)


def run_case(policy: Policy, case: Case, case_file: CaseFile) -> CaseResult:
    """Replay ``case`` through ``policy`` one message at a time and check its expectations."""
    decision, trace = _replay(policy, case)
    mismatches = check_expectations(case.expect, decision)
    return CaseResult(
        case, case_file.path, case_file.policy_path, decision, trace, tuple(mismatches)
    )


def not_run(case: Case, case_file: CaseFile, reason: str) -> CaseResult:
    """A failed result for a case that could not run."""
    return CaseResult(case, case_file.path, case_file.policy_path, None, (), (), reason)


def _show(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, Outcome):
        return value.value
    if isinstance(value, tuple | list):
        return "[" + ", ".join(str(item) for item in value) + "]"
    return str(value)


def check_expectations(expect: Expectation, decision: Decision) -> list[Mismatch]:
    """Every expectation of ``expect`` that ``decision`` does not meet."""
    found: list[Mismatch] = []

    def compare(key: str, expected: object, actual: object) -> None:
        if expected is not None and expected != actual:
            found.append(
                Mismatch(
                    key,
                    _json_value(expected),
                    _json_value(actual),
                    f"{key}: expected {_show(expected)}, got {_show(actual)}",
                )
            )

    compare("outcome", expect.outcome, decision.outcome)
    compare("at", expect.at, decision.message_index)
    compare("rule", expect.rule, decision.rule)
    compare("category", expect.category, decision.category)
    compare("reason", expect.reason, decision.reason)
    events = decision.events
    ends = [event for event in events if event.outcome is Outcome.END]
    if expect.never_ends is True and ends:
        end = ends[0]
        found.append(
            Mismatch(
                "never_ends",
                True,
                False,
                f"never_ends: expected no end, but `{end.rule}` ended it at {end.message_index}",
            )
        )
    elif expect.never_ends is False and not ends:
        found.append(Mismatch("never_ends", False, True, "never_ends: false: expected an end"))
    if expect.warns_at is not None:
        warns = [e.message_index for e in events if e.outcome is Outcome.WARN]
        if expect.warns_at not in warns:
            found.append(
                Mismatch(
                    "warns_at",
                    expect.warns_at,
                    warns,
                    f"warns_at: expected a warning at {expect.warns_at}, got "
                    + (f"warnings at {_show(warns)}" if warns else "none"),
                )
            )
    escalations = [e.message_index for e in events if e.outcome is Outcome.ESCALATE]
    if expect.escalates is True and not escalations:
        found.append(
            Mismatch("escalates", True, False, "escalates: expected an escalation, got none")
        )
    elif expect.escalates is False and escalations:
        found.append(
            Mismatch(
                "escalates",
                False,
                True,
                f"escalates: expected no escalation, got one at {escalations[0]}",
            )
        )
    if expect.protection is not None:
        fired = _unique(e.rule for e in events if e.kind == "protection")
        if expect.protection not in fired:
            found.append(
                Mismatch(
                    "protection",
                    expect.protection,
                    fired,
                    f"protection: expected `{expect.protection}` to act, got "
                    + (", ".join(f"`{name}`" for name in fired) if fired else "no protection"),
                )
            )
    if expect.blocked is not None:
        blocked = _unique(name for e in events for name in e.blocked)
        if expect.blocked not in blocked:
            found.append(
                Mismatch(
                    "blocked",
                    expect.blocked,
                    blocked,
                    f"blocked: expected a protection to block `{expect.blocked}`, got "
                    + (", ".join(f"`{name}`" for name in blocked) if blocked else "no block"),
                )
            )
    compare("post_termination", expect.post_termination, decision.post_termination)
    return found


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _json_value(value: object) -> object:
    if isinstance(value, Outcome):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


# --------------------------------------------------------------------- coverage

CoverageKind: TypeAlias = Literal[
    "category", "signal", "redirect", "detector", "rule", "protection"
]
COVERAGE_KINDS: Final[tuple[tuple[CoverageKind, str], ...]] = (
    ("category", "categories"),
    ("signal", "signals"),
    ("redirect", "redirects"),
    ("detector", "detectors"),
    ("rule", "rules"),
    ("protection", "protections"),
)


@dataclass(slots=True)
class CoverageItem:
    """A declaration or detector leaf, and how many cases exercised it.

    A category, signal or redirect is exercised when it matched a message; a
    detector leaf (identified by its line and column) when it produced evidence;
    a rule when it fired or was blocked; a protection when it acted.
    """

    kind: CoverageKind
    name: str
    line: int
    column: int
    owner: str | None = None
    cases: int = 0

    @property
    def exercised(self) -> bool:
        """Whether any case exercised it."""
        return self.cases > 0

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return {
            "kind": self.kind,
            "name": self.name,
            "line": self.line,
            "column": self.column,
            "owner": self.owner,
            "exercised": self.exercised,
            "cases": self.cases,
        }


def _leaves(
    detector: Detector, measured: bool
) -> Iterator[tuple[Keywords | Pattern | Score | Annotation, bool]]:
    if isinstance(detector, AllOf | AnyOf):
        for item in detector.items:
            yield from _leaves(item, measured)
    elif isinstance(detector, Not):
        # `not` contributes no evidence, so what is inside it can never be seen to match.
        yield from _leaves(detector.item, False)
    else:
        yield detector, measured


def _percent(exercised: int, total: int) -> float:
    return 100.0 if total == 0 else 100.0 * exercised / total


class PolicyCoverage:
    """Which parts of one policy its cases exercised.

    Detector leaves inside ``unless`` or under ``not`` never produce evidence, so
    they are counted in :attr:`unmeasured` rather than measured.
    """

    def __init__(self, policy: Policy, path: str) -> None:
        """Every item of ``policy`` (at ``path``), none exercised yet."""
        self.policy = policy
        self.path = path
        self.cases = 0
        self.unmeasured = 0
        self.items: list[CoverageItem] = []
        self._named: dict[tuple[str, str], CoverageItem] = {}
        # Keyed by label too: in a composed policy, two files can have a detector at
        # the same line and column.
        self._detectors: dict[tuple[int, int, str], CoverageItem] = {}
        for category in policy.categories:
            self._add(CoverageItem("category", category.name, category.line, category.column))
        for signal in policy.signals:
            self._add(CoverageItem("signal", signal.name, signal.line, signal.column))
        for redirect in policy.redirects:
            self._add(CoverageItem("redirect", redirect.name, redirect.line, redirect.column))
        for category in policy.categories:
            owner = f"category {category.name}"
            self._detector_items(category.detect, f"{owner}: detect", True)
            if category.follow_up is not None:
                self._detector_items(category.follow_up, f"{owner}: follow_up", True)
            if category.unless is not None:
                self._detector_items(category.unless, f"{owner}: unless", False)
        for signal in policy.signals:
            self._detector_items(signal.detect, f"signal {signal.name}: detect", True)
            if signal.unless is not None:
                self._detector_items(signal.unless, f"signal {signal.name}: unless", False)
        for redirect in policy.redirects:
            self._detector_items(redirect.detect, f"redirect {redirect.name}: detect", True)
        for rule in policy.rules:
            self._add(CoverageItem("rule", rule.name, rule.line, rule.column))
        for protection in policy.protections:
            self._add(
                CoverageItem("protection", protection.name, protection.line, protection.column)
            )

    def _add(self, item: CoverageItem) -> None:
        self.items.append(item)
        self._named[(item.kind, item.name)] = item

    def _detector_items(self, detector: Detector, owner: str, measured: bool) -> None:
        for leaf, counted in _leaves(detector, measured):
            key = (leaf.line, leaf.column, leaf.label)
            if not counted:
                self.unmeasured += 1
            elif key not in self._detectors:
                item = CoverageItem("detector", leaf.label, leaf.line, leaf.column, owner)
                self._detectors[key] = item
                self.items.append(item)

    def add(self, result: CaseResult) -> None:
        """Count what one case exercised."""
        if result.decision is None:
            return
        self.cases += 1
        hit: set[int] = set()
        for step in result.trace:
            for match in step.matches:
                named = self._named.get((match.kind, match.name))
                if named is not None:
                    hit.add(id(named))
                for evidence in match.evidence:
                    leaf = self._detectors.get(
                        (evidence.line, evidence.column, evidence.detector)
                    )
                    if leaf is not None:
                        hit.add(id(leaf))
        for event in result.decision.events:
            acted = self._named.get((event.kind, event.rule))
            if acted is not None:
                hit.add(id(acted))
            for name in event.blocked:
                blocked = self._named.get(("rule", name))
                if blocked is not None:
                    hit.add(id(blocked))
        for item in self.items:
            if id(item) in hit:
                item.cases += 1

    def kinds(self) -> list[tuple[str, int, int]]:
        """``(plural kind, exercised, total)`` for each kind, in report order."""
        rows = []
        for kind, plural in COVERAGE_KINDS:
            items = [item for item in self.items if item.kind == kind]
            rows.append((plural, sum(1 for i in items if i.exercised), len(items)))
        return rows

    @property
    def exercised(self) -> int:
        """Items exercised by some case."""
        return sum(1 for item in self.items if item.exercised)

    @property
    def total(self) -> int:
        """Items measured."""
        return len(self.items)

    @property
    def percent(self) -> float:
        """Overall coverage in percent (100 for a policy with nothing to measure)."""
        return _percent(self.exercised, self.total)

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dictionary."""
        return {
            "policy": self.path,
            "name": self.policy.name,
            "cases": self.cases,
            "exercised": self.exercised,
            "total": self.total,
            "percent": round(self.percent, 2),
            "kinds": {
                plural: {
                    "exercised": hit,
                    "total": total,
                    "percent": round(_percent(hit, total), 2),
                }
                for plural, hit, total in self.kinds()
            },
            "unmeasured_detectors": self.unmeasured,
            "items": [item.to_json() for item in self.items],
        }


# --------------------------------------------------------------------- the suite


@dataclass(slots=True)
class SuiteResult:
    """Everything a ``policylang test`` run found, for the reporters."""

    results: list[CaseResult] = field(default_factory=list)
    errors: list[CaseFileError] = field(default_factory=list)
    coverage: list[PolicyCoverage] = field(default_factory=list)
    files: list[CaseFile] = field(default_factory=list)

    @property
    def passed(self) -> int:
        """Cases that passed."""
        return sum(1 for result in self.results if result.passed)

    @property
    def failed(self) -> int:
        """Cases that failed or could not run."""
        return len(self.results) - self.passed


def summary_line(suite: SuiteResult) -> str:
    """The last line of every run, for people and CI log parsers: ``12 passed, 1 failed``."""
    return f"{suite.passed} passed, {suite.failed} failed"


# --------------------------------------------------------------------- human output


def _escape(text: str) -> str:
    """Control, format and separator characters shown as ``\\uXXXX``."""
    return "".join(
        f"\\u{ord(ch):04x}" if unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} else ch
        for ch in text
    )


def _preview(text: str, width: int = _PREVIEW_WIDTH) -> str:
    text = _escape(text)
    if len(text) > width:
        text = text[: width - 3] + "..."
    return f'"{text}"'


def _evidence_text(evidence: Evidence) -> str:
    where = f"({evidence.line}:{evidence.column})"
    if evidence.score is not None:
        return f"{evidence.detector} = {evidence.score:g} {where}"
    if evidence.text is not None:
        return f"{evidence.detector} {_preview(evidence.text, 40)} {where}"
    return f"{evidence.detector} {where}"


def _grouped(evidence: Sequence[Evidence]) -> list[list[Evidence]]:
    """Evidence of one detector kept together: ``pattern how_to "a", "b" (3:7)``."""
    groups: dict[tuple[str, int, int], list[Evidence]] = {}
    for item in evidence:
        groups.setdefault((item.detector, item.line, item.column), []).append(item)
    return list(groups.values())


def _evidence_group(group: Sequence[Evidence]) -> str:
    if len(group) == 1 or any(item.text is None for item in group):
        return ", ".join(_evidence_text(item) for item in group)
    first = group[0]
    texts = ", ".join(_preview(item.text or "", 40) for item in group)
    return f"{first.detector} {texts} ({first.line}:{first.column})"


def _event_text(event: Event) -> str:
    details = []
    if event.category is not None:
        details.append(f"category {event.category}")
    if event.reason:
        details.append(f"reason {event.reason}")
    if event.kind == "protection" and event.outcome is Outcome.CONTINUE and not event.message:
        text = f"-> continue: protection {event.rule} blocked an end"
    else:
        text = f"-> {event.outcome.value}: {event.kind} {event.rule}"
    if details:
        text += f" ({', '.join(details)})"
    if event.blocked:
        text += "; blocked: " + ", ".join(event.blocked)
    return text


def _counters_text(counters: Mapping[str, int]) -> str:
    return ", ".join(f"{name}={value}" for name, value in counters.items())


def render_trace(trace: Sequence[Step], indent: str = "    ") -> list[str]:
    """The decision trace: per message, what matched, the counters after it, its event."""
    lines: list[str] = []
    deeper = indent + "    "
    previous: Mapping[str, int] = {}
    for step in trace:
        lines.append(f"{indent}[{step.index}] {step.role}: {_preview(step.content)}")
        if step.locked:
            lines.append(f"{deeper}(after the end: not evaluated)")
            continue
        for match in step.matches:
            evidence = ", ".join(_evidence_group(group) for group in _grouped(match.evidence))
            lines.append(f"{deeper}{match.kind} {match.name}: {evidence or '(no evidence)'}")
        if step.counters != previous or (step.role == "user" and step.counters):
            lines.append(f"{deeper}counters: {_counters_text(step.counters) or 'all zero'}")
        previous = step.counters
        if step.event is not None:
            lines.append(f"{deeper}{_event_text(step.event)}")
    return lines


def _describe_expectation(key: str, value: object) -> str:
    if key == "never_ends":
        return "never ends" if value else "ends"
    if key == "escalates":
        return "escalates" if value else "never escalates"
    if key == "warns_at":
        return f"warns at {value}"
    if key == "blocked":
        return f"blocks {value}"
    if key == "post_termination":
        return f"post-termination {_show(value)}"
    return f"{key} {_show(value)}"


def _actual(decision: Decision) -> str:
    return (
        f"outcome {decision.outcome.value}, at {_show(decision.message_index)}, "
        f"rule {_show(decision.rule)}, category {_show(decision.category)}"
    )


def _case_line(result: CaseResult) -> str:
    status = "PASS" if result.passed else "FAIL"
    case = result.case
    return f"{status} {case.location.file}:{case.location.line}: {case.name}"


def render_result(result: CaseResult, *, details: bool = False) -> list[str]:
    """One result: its line, then (for a failure, or with ``details``) expected vs
    actual, what did not hold, and the decision trace."""
    lines = [_case_line(result)]
    if result.passed and not details:
        return lines
    if result.error is not None:
        lines.append(f"  not run: {result.error}")
        return lines
    decision = result.decision
    assert decision is not None
    lines.append(f"  expected: {result.case.expect.describe()}")
    lines.append(f"  actual:   {_actual(decision)}")
    for mismatch in result.mismatches:
        lines.append(f"  - {mismatch.message}")
    if result.case.source is not None:
        lines.append(f"  conversation from {result.case.source}")
    lines.append("  trace:")
    lines.extend(render_trace(result.trace))
    return lines


def render_human(suite: SuiteResult, *, verbose: bool = False) -> str:
    """Test-file errors, one line per failing case (every case with ``verbose``) with
    expected vs actual and the decision trace for failures; no summary line."""
    lines = [error.located() for error in suite.errors]
    for result in suite.results:
        if result.passed and not verbose:
            continue
        lines.extend(render_result(result))
    return "".join(line + "\n" for line in lines)


def render_coverage(coverages: Sequence[PolicyCoverage], *, verbose: bool = False) -> str:
    """Per policy: exercised over total per kind and overall, then what was never exercised."""
    lines: list[str] = []
    for coverage in coverages:
        noun = "case" if coverage.cases == 1 else "cases"
        lines.append(f"coverage of {coverage.path} ({coverage.cases} {noun}):")
        rows = [*coverage.kinds(), ("overall", coverage.exercised, coverage.total)]
        for plural, hit, total in rows:
            text = f"  {plural:<12} {hit:>3} of {total:<3} {_percent(hit, total):6.1f}%"
            if plural == "detectors" and coverage.unmeasured:
                text += f"  ({coverage.unmeasured} more inside `unless` or `not` not measured)"
            lines.append(text)
        missed = [item for item in coverage.items if not item.exercised]
        if missed:
            lines.append("  never exercised:")
            lines.extend(f"    {_item_text(item)}" for item in missed)
        if verbose:
            hit_items = [item for item in coverage.items if item.exercised]
            if hit_items:
                lines.append("  exercised:")
                lines.extend(
                    f"    {_item_text(item)}: {item.cases} case{'' if item.cases == 1 else 's'}"
                    for item in hit_items
                )
    if len(coverages) > 1:
        hit = sum(c.exercised for c in coverages)
        total = sum(c.total for c in coverages)
        lines.append(f"coverage overall: {hit} of {total}, {_percent(hit, total):.1f}%")
    return "".join(line + "\n" for line in lines)


def _item_text(item: CoverageItem) -> str:
    text = f"{item.kind} {item.name} (line {item.line}:{item.column})"
    if item.owner is not None:
        text += f" in {item.owner}"
    return text


# --------------------------------------------------------------------- JSON and JUnit


def _result_json(result: CaseResult, *, trace: bool) -> dict[str, object]:
    case = result.case
    decision = result.decision
    document: dict[str, object] = {
        "name": case.name,
        "file": case.location.file,
        "line": case.location.line,
        "column": case.location.column,
        "policy": result.policy_path,
        "status": "passed" if result.passed else "failed",
        "expected": case.expect.given(),
        "actual": None,
        "failures": [],
        "error": result.error,
        "transcript": case.source,
    }
    if decision is not None:
        document["actual"] = {
            "outcome": decision.outcome.value,
            "at": decision.message_index,
            "rule": decision.rule,
            "category": decision.category,
            "reason": decision.reason,
            "post_termination": list(decision.post_termination),
            "events": [
                {
                    "message_index": event.message_index,
                    "outcome": event.outcome.value,
                    "kind": event.kind,
                    "rule": event.rule,
                    "category": event.category,
                    "blocked": list(event.blocked),
                }
                for event in decision.events
            ],
        }
    if result.mismatches:
        document["failures"] = [
            {**mismatch.to_json(), "code": EXPECTATION_MISMATCH} for mismatch in result.mismatches
        ]
    if trace or not result.passed:
        document["trace"] = [step.to_json() for step in result.trace]
    return document


def render_json(
    suite: SuiteResult, *, tool_version: str, verbose: bool = False, coverage: bool = False
) -> str:
    """One JSON document: per-case results, test-file errors, coverage and the summary.

    Traces are included for failed cases (for every case with ``verbose``).
    ASCII-only, like every JSON output of policylang.
    """
    document: dict[str, object] = {
        "format": "policylang-test",
        "version": 1,
        "tool": {"name": "policylang", "version": tool_version},
        "files": [
            {"path": f.path, "policy": f.policy_path, "cases": len(f.cases)} for f in suite.files
        ],
        "results": [_result_json(result, trace=verbose) for result in suite.results],
        "errors": [error.to_json() for error in suite.errors],
        "summary": {
            "passed": suite.passed,
            "failed": suite.failed,
            "total": len(suite.results),
            "errors": len(suite.errors),
        },
    }
    if coverage:
        hit = sum(c.exercised for c in suite.coverage)
        total = sum(c.total for c in suite.coverage)
        document["coverage"] = {
            "exercised": hit,
            "total": total,
            "percent": round(_percent(hit, total), 2),
            "policies": [c.to_json() for c in suite.coverage],
        }
    return json.dumps(document, ensure_ascii=True, indent=2) + "\n"


_XML_ILLEGAL: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml(text: str) -> str:
    """Text safe for XML 1.0: characters it cannot hold are written as ``\\uXXXX``."""
    return _XML_ILLEGAL.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def render_junit(suite: SuiteResult) -> str:
    """JUnit XML: a ``testsuite`` per policy, a ``testcase`` per case.

    A failed case has a ``failure`` (message: what did not hold; text: expected vs
    actual and the trace). A test file with errors is a ``testsuite`` of its own
    with one ``testcase`` holding an ``error`` per problem. No timings, so the
    output is deterministic.
    """
    root = ET.Element("testsuites", {"name": "policylang"})
    groups: dict[str, list[CaseResult]] = {}
    for result in suite.results:
        groups.setdefault(result.policy_path, []).append(result)
    total = failures = errors = 0
    for policy_path, results in groups.items():
        failed = sum(1 for result in results if not result.passed)
        element = ET.SubElement(
            root,
            "testsuite",
            {
                "name": _xml(policy_path),
                "tests": str(len(results)),
                "failures": str(failed),
                "errors": "0",
                "skipped": "0",
            },
        )
        for result in results:
            case = result.case
            classname = os.path.splitext(os.path.basename(policy_path))[0]
            testcase = ET.SubElement(
                element,
                "testcase",
                {
                    "name": _xml(case.name),
                    "classname": _xml(classname),
                    "file": _xml(case.location.file),
                    "line": str(case.location.line),
                },
            )
            if not result.passed:
                failure = ET.SubElement(
                    testcase,
                    "failure",
                    {"message": _xml(result.headline()), "type": EXPECTATION_MISMATCH},
                )
                failure.text = _xml("\n".join(render_result(result)) + "\n")
        total += len(results)
        failures += failed
    by_file: dict[str, list[CaseFileError]] = {}
    for error in suite.errors:
        by_file.setdefault(error.file, []).append(error)
    for path, problems in by_file.items():
        element = ET.SubElement(
            root,
            "testsuite",
            {"name": _xml(path), "tests": "1", "failures": "0", "errors": "1", "skipped": "0"},
        )
        testcase = ET.SubElement(
            element, "testcase", {"name": _xml(path), "classname": "test-file", "file": _xml(path)}
        )
        for problem in problems:
            item = ET.SubElement(
                testcase, "error", {"message": _xml(problem.message), "type": problem.code}
            )
            item.text = _xml(problem.located())
        total += 1
        errors += 1
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", str(errors))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --------------------------------------------------------------------- recording


def _quote(text: str) -> str:
    """A double-quoted YAML scalar that reads back as exactly ``text``, on one line."""
    dumped = yaml.safe_dump(text, default_style='"', allow_unicode=True, width=1 << 30)
    return dumped.removesuffix("\n").removesuffix("\n...")


_PLAIN: Final = re.compile(r"[A-Za-z_./][A-Za-z0-9_./-]*")
_YAML_WORDS: Final = frozenset(["y", "n", "yes", "no", "true", "false", "on", "off", "null"])


def _scalar(text: str) -> str:
    """``text`` plain when YAML reads it back as the same text (a name), else quoted."""
    if _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    return _quote(text)


def _flow(value: object) -> str:
    """Plain data as a one-line YAML flow collection."""
    dumped = yaml.safe_dump(
        value, default_flow_style=True, allow_unicode=True, width=1 << 30, sort_keys=False
    )
    return dumped.strip().removesuffix("...").strip()


def case_text(
    name: str,
    messages: Sequence[Message],
    decision: Decision,
    *,
    indent: int = 2,
    comment: str | None = None,
) -> str:
    """A case as YAML text, to append to a ``cases:`` list indented by ``indent`` spaces.

    The conversation is written inline and ``expect`` holds the decision's outcome,
    ``at``, ``rule`` and ``category`` (the ones it has).
    """
    pad = " " * indent
    lines = [f"{pad}- name: {_quote(name)}"]
    if comment:
        lines.append(f"{pad}  # {_escape(comment)}")
    lines.append(f"{pad}  conversation:")
    for message in messages:
        lines.append(f"{pad}    - {message.role}: {_quote(message.content)}")
        if message.metadata:
            lines.append(f"{pad}      metadata: {_flow(dict(message.metadata))}")
    expect = [f"outcome: {decision.outcome.value}"]
    if decision.message_index is not None:
        expect.append(f"at: {decision.message_index}")
    if decision.rule is not None:
        expect.append(f"rule: {_scalar(decision.rule)}")
    if decision.category is not None:
        expect.append(f"category: {_scalar(decision.category)}")
    lines.append(f"{pad}  expect: {{{', '.join(expect)}}}")
    return "".join(line + "\n" for line in lines)


@dataclass(frozen=True, slots=True)
class AppendPlan:
    """How to add a case to a test file: the text to keep, and the list's indentation.

    ``header`` is the start of a new file (empty when the file exists).
    """

    existing: str
    indent: int
    newline: str
    header: str = ""

    def apply(self, block: str) -> tuple[str, int]:
        """The new file text with ``block`` appended, and the line the block starts on.

        A blank line separates the case from the one before it.
        """
        start = self.existing
        if start and not start.endswith("\n"):
            start += self.newline
        if start.strip() and not self.header and not start.endswith(self.newline * 2):
            start += self.newline
        added = self.header + block
        if self.newline != "\n":
            added = added.replace("\n", self.newline)
        line = (start + self.header).count("\n") + 1
        return start + added, line


def plan_append(path: str, policy_path: str) -> AppendPlan | CaseFileError:
    """Plan appending a case to the test file at ``path`` (which may not exist yet).

    The existing text is kept byte for byte: the case is added at the end, which
    needs ``cases:`` to be the last key of the file and a block list (or empty).
    A new file names its policy with ``policy:`` unless the names already match.
    Raises ``OSError`` when an existing file cannot be read.
    """
    if not os.path.exists(path):
        lines = [
            f"# Test cases for {os.path.basename(policy_path)}; run them with `policylang test`."
        ]
        if not (
            path.endswith(CASES_SUFFIX)
            and os.path.realpath(path[: -len(CASES_SUFFIX)] + ".policy")
            == os.path.realpath(policy_path)
        ):
            relative = os.path.relpath(policy_path, os.path.dirname(os.path.abspath(path)))
            lines.append(f"policy: {_scalar(relative.replace(os.sep, '/'))}")
        lines.append("cases:")
        return AppendPlan("", 2, "\n", "".join(line + "\n" for line in lines))
    with open(path, "rb") as handle:
        data = handle.read()
    text, error = _decode(path, data)
    if error is not None or text is None:
        assert error is not None
        return error
    existing = data.decode("utf-8")
    newline = "\r\n" if "\r\n" in existing else "\n"
    root, error = _compose(path, text)
    if error is not None:
        return error
    if root is None:  # nothing but comments
        return AppendPlan(existing, 2, newline, "cases:\n")
    if not isinstance(root, MappingNode) or root.flow_style:
        return CaseFileError(
            path, 1, 1, INVALID_TEST_FILE, "cannot add a case: the file is not a `cases:` test file"
        )
    pairs = root.value
    keys = [str(key.value) if isinstance(key, ScalarNode) else "" for key, _ in pairs]
    if "cases" not in keys:
        return AppendPlan(existing, 2, newline, "cases:\n")
    key, value = pairs[keys.index("cases")]
    where = _location(path, key)
    if keys[-1] != "cases":
        return CaseFileError(
            path,
            where.line,
            where.column,
            INVALID_TEST_FILE,
            "cannot add a case: `cases:` must be the last key of the file (move it to the end)",
        )
    if _is_null(value):
        return AppendPlan(existing, 2, newline)
    if not isinstance(value, SequenceNode) or value.flow_style:
        return CaseFileError(
            path,
            where.line,
            where.column,
            INVALID_TEST_FILE,
            "cannot add a case: `cases:` must be a list written one `- name:` per case "
            "(replace `[]` with nothing)",
        )
    mark = value.start_mark
    return AppendPlan(existing, mark.column if mark is not None else 2, newline)
