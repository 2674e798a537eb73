"""Registry of every diagnostic code: id, kebab name, phase, default severity, summary.

This module is the single source of truth for codes. Codes are never reused: retire a
code by leaving its entry in place and marking its summary, never by recycling the id.
To add a code, add one ``Code(...)`` line under its family's header in ``_ENTRIES``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from policylang.diagnostics import Severity

__all__ = ["CODES", "PHASES", "Code", "lookup"]

#: Pipeline steps a code can belong to, in pipeline order.
PHASES: tuple[str, ...] = (
    "source",  # reading and decoding files (source.py)
    "parse",  # lexing and parsing (parser.py, syntax_errors.py)
    "build",  # tree -> AST, literal decoding (builder.py, literals.py)
    "compose",  # extends, imports, overrides, params, locks, tenants (compose.py)
    "check",  # semantic passes (checker.py)
    "lint",  # configurable quality and hygiene rules (lint/)
    "lower",  # AST -> IR (lower.py)
    "codegen",  # IR -> Python and its verification (codegen/)
    "test",  # policy test cases and transcripts (testing.py, transcripts.py)
    "internal",  # compiler bugs, from any step
)

_ID_RE = re.compile(r"^PL\d{3}$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Code:
    """One registered diagnostic code."""

    id: str
    name: str
    phase: str
    severity: Severity
    summary: str

    @property
    def docs_path(self) -> str:
        """Repository-relative link to this code's documentation."""
        return f"docs/diagnostics.md#{self.id.lower()}"


_ERROR = Severity.ERROR
_WARNING = Severity.WARNING
_INFO = Severity.INFO

# fmt: off
_ENTRIES: tuple[Code, ...] = (
    # ---- PL0xx input: reading and decoding source files
    Code("PL001", "invalid-utf8", "source", _ERROR, "file is not valid UTF-8"),
    Code("PL002", "unexpected-bom", "source", _WARNING, "file starts with a byte order mark"),
    Code("PL003", "policy-file-too-large", "source", _ERROR,
         "policy, base, imported or tenant file larger than the size limit"),

    # ---- PL1xx syntax
    Code("PL101", "unexpected-token", "parse", _ERROR, "token the grammar does not allow here"),
    Code("PL102", "unexpected-character", "parse", _ERROR, "character that cannot start any token"),
    Code("PL103", "unexpected-eof", "parse", _ERROR, "file ends before a construct is complete"),
    Code("PL104", "unterminated-string", "parse", _ERROR, "string literal without a closing quote"),
    Code("PL105", "invalid-escape", "build", _ERROR, "unknown escape sequence in a string literal"),
    Code("PL106", "nesting-too-deep", "build", _ERROR, "value nested deeper than the limit"),

    # ---- PL2xx names & structure
    Code("PL201", "unknown-declaration-kind", "check", _ERROR,
         "declaration of a kind the language does not have"),
    Code("PL202", "wrong-declaration-form", "check", _ERROR,
         "block declaration written with `=`, or the reverse"),
    Code("PL203", "duplicate-definition", "check", _ERROR,
         "name declared more than once in a file"),
    Code("PL204", "missing-policy", "check", _ERROR, "file has no `policy` declaration"),
    Code("PL205", "duplicate-policy", "check", _ERROR,
         "file has more than one `policy` declaration"),
    Code("PL206", "unknown-property", "check", _ERROR,
         "property the declaration kind does not have"),
    Code("PL207", "missing-required-property", "check", _ERROR, "required property is missing"),
    Code("PL208", "duplicate-property", "check", _ERROR,
         "property given more than once in one block"),
    Code("PL209", "wrong-value-type", "check", _ERROR, "value of the wrong type for its place"),
    Code("PL210", "unknown-enum-value", "check", _ERROR,
         "word that is not one of the allowed values"),
    Code("PL211", "undefined-reference", "check", _ERROR, "name that is not declared in the file"),
    Code("PL212", "wrong-kind-reference", "check", _ERROR,
         "name that refers to a declaration of the wrong kind"),
    Code("PL213", "invalid-counter-key", "check", _ERROR,
         "counter key that does not fit the counter's `per`"),
    Code("PL214", "reserved-name", "check", _ERROR,
         "declaration named with a word conditions reserve"),
    Code("PL215", "invalid-comparison", "check", _ERROR,
         "comparison or membership test of the wrong shape"),

    # ---- PL3xx values & meaning
    Code("PL301", "invalid-regex", "check", _ERROR,
         "pattern that is not a valid regular expression"),
    Code("PL302", "catastrophic-backtracking", "check", _ERROR,
         "pattern prone to catastrophic backtracking"),
    Code("PL303", "invalid-regex-flag", "check", _ERROR,
         "pattern flag other than `s`, `m`, `x`, `i`"),
    Code("PL304", "threshold-out-of-range", "check", _ERROR, "score threshold outside 0 to 1"),
    Code("PL305", "invalid-count", "check", _ERROR,
         "count, window or number of turns that is not a whole number in range"),
    Code("PL306", "unknown-taxonomy", "check", _ERROR,
         "`maps_to` names a taxonomy the language does not know"),
    Code("PL307", "invalid-taxonomy-code", "check", _ERROR,
         "`maps_to` code that the taxonomy does not have"),
    Code("PL308", "invalid-keyword", "check", _ERROR,
         "empty keyword list, empty term or misplaced `*` wildcard"),
    Code("PL309", "invalid-protection-action", "check", _ERROR,
         "protection whose action is `end` or `warn`"),
    Code("PL310", "unprotected-end", "check", _ERROR,
         "`end` rule in a policy without any protection"),
    Code("PL311", "end-without-failed-redirect", "check", _ERROR,
         "harm-driven `end` that does not require failed redirects"),
    Code("PL312", "empty-value", "check", _ERROR,
         "empty string where a label, key or version is needed"),
    Code("PL313", "condition-too-complex", "check", _ERROR,
         "`end` condition too complex to prove it is a last resort"),
    Code("PL314", "unknown-normalization-step", "check", _ERROR,
         "`normalize` names a step that does not exist"),
    Code("PL315", "unbounded-pattern", "check", _ERROR,
         "pattern that can match text of unbounded length"),
    Code("PL316", "policy-limit-exceeded", "check", _ERROR,
         "too many declarations, detectors or keyword terms, or too long a pattern"),

    # ---- PL4xx lint: quality
    Code("PL401", "unused-declaration", "lint", _WARNING,
         "list, pattern, signal or counter that nothing uses"),
    Code("PL402", "unused-category", "lint", _WARNING,
         "category that no rule or protection can act on"),
    Code("PL403", "counter-never-counts", "lint", _WARNING,
         "redirect counter in a policy without any `redirect`"),
    Code("PL404", "duplicate-keyword", "lint", _WARNING, "keyword that appears twice in one list"),
    Code("PL405", "uppercase-in-pattern", "lint", _WARNING,
         "upper-case letter in a pattern, which never matches"),
    Code("PL406", "dead-by-protection", "lint", _WARNING,
         "`end` rule that a protection always blocks"),
    Code("PL407", "unreachable-condition", "lint", _WARNING,
         "rule or protection whose condition can never hold"),
    Code("PL408", "shadowed-rule", "lint", _WARNING,
         "rule that can only repeat an earlier rule's action"),
    Code("PL409", "delayed-rule", "lint", _WARNING,
         "rule that can only fire after an equivalent earlier rule"),
    Code("PL410", "unused-suppression", "lint", _WARNING,
         "`allow(...)` comment that suppresses nothing"),
    Code("PL411", "invalid-suppression", "lint", _WARNING,
         "`allow(...)` naming an unknown or unsuppressible code"),

    # ---- PL5xx lint: text hygiene
    Code("PL501", "bidi-control-character", "lint", _WARNING,
         "bidirectional control character in the text"),
    Code("PL502", "invisible-character", "lint", _WARNING,
         "zero-width or other invisible character in the text"),

    # ---- PL6xx composition: extends, imports, overrides, params, locks, tenants
    Code("PL601", "unreadable-policy-file", "compose", _ERROR,
         "base policy, imported file or tenant file cannot be read"),
    Code("PL602", "composition-cycle", "compose", _ERROR,
         "policies extend or import each other in a cycle"),
    Code("PL603", "override-of-undeclared", "compose", _ERROR,
         "override, disable or removal of something that is not inherited"),
    Code("PL604", "override-kind-mismatch", "compose", _ERROR,
         "override names the wrong kind of declaration"),
    Code("PL605", "conflicting-override", "compose", _ERROR,
         "the same thing is changed twice in one file"),
    Code("PL606", "redeclared-inherited", "compose", _ERROR,
         "declaration reuses the name of an inherited or imported one"),
    Code("PL607", "lock-violation", "compose", _ERROR,
         "extension weakens a safety floor its base locked"),
    Code("PL608", "unknown-parameter", "compose", _ERROR,
         "reference to, or tenant setting of, a parameter that does not exist"),
    Code("PL609", "invalid-parameter", "compose", _ERROR,
         "malformed `param`: value, range or lock"),
    Code("PL610", "parameter-not-tunable", "compose", _ERROR,
         "tenant sets a parameter the policy does not declare tunable"),
    Code("PL611", "tenant-value-out-of-range", "compose", _ERROR,
         "tenant value of the wrong type or outside the declared range"),
    Code("PL612", "invalid-composition", "compose", _ERROR,
         "malformed `extends`, `import`, `disable`, `override`, `locked` or tenant file"),
    Code("PL613", "unknown-import", "compose", _ERROR,
         "import names something the file does not declare"),
    Code("PL614", "import-conflict", "compose", _ERROR,
         "imported declaration clashes with another of the same name"),
    Code("PL615", "unused-parameter", "compose", _WARNING, "parameter that nothing uses"),

    # ---- PL8xx test and transcript outcomes
    Code("PL801", "transcript-invalid-json", "test", _ERROR, "transcript line is not valid JSON"),
    Code("PL802", "transcript-invalid-record", "test", _ERROR,
         "transcript line is JSON but not a conversation record"),
    Code("PL803", "transcript-invalid-utf8", "test", _ERROR, "transcript line is not valid UTF-8"),
    Code("PL804", "transcript-corrupt-compression", "test", _ERROR,
         "gzip-compressed transcript is corrupt or truncated"),
    Code("PL805", "test-file-invalid-yaml", "test", _ERROR, "test file is not valid YAML"),
    Code("PL806", "test-file-invalid", "test", _ERROR,
         "test file has an unknown key, a wrong type or a missing value"),
    Code("PL807", "test-unknown-name", "test", _ERROR,
         "test names a rule, category, reason or protection the policy lacks"),
    Code("PL808", "test-transcript-unavailable", "test", _ERROR,
         "transcript a test case refers to cannot be read or lacks the conversation"),
    Code("PL809", "expectation-mismatch", "test", _ERROR,
         "test case's expectation does not hold"),
    Code("PL810", "transcript-record-too-large", "test", _ERROR,
         "transcript record is larger than the record size limit"),
    Code("PL811", "transcript-too-many-messages", "test", _ERROR,
         "conversation has more messages than the message limit"),
    Code("PL812", "transcript-message-too-long", "test", _ERROR,
         "conversation has a message longer than the message length limit"),

    # ---- PL9xx internal
    Code("PL900", "internal-error", "internal", _ERROR, "compiler bug; please report it"),
)
# fmt: on


def _build(entries: tuple[Code, ...]) -> dict[str, Code]:
    # Registration-time checks: a malformed registry is a bug, so fail at import.
    registry: dict[str, Code] = {}
    names: set[str] = set()
    for code in entries:
        if not _ID_RE.match(code.id):
            raise ValueError(f"bad diagnostic code id {code.id!r}")
        if not _NAME_RE.match(code.name):
            raise ValueError(f"{code.id}: name {code.name!r} is not kebab-case")
        if code.phase not in PHASES:
            raise ValueError(f"{code.id}: unknown phase {code.phase!r}")
        if code.id in registry or code.name in names:
            raise ValueError(f"{code.id}: duplicate id or name {code.name!r}")
        registry[code.id] = code
        names.add(code.name)
    return registry


#: Every registered code, keyed by id, in registry order.
CODES: dict[str, Code] = _build(_ENTRIES)


def lookup(code: str) -> Code:
    """Return the registry entry for ``code``; raise ``KeyError`` if unregistered."""
    try:
        return CODES[code]
    except KeyError:
        raise KeyError(f"unregistered diagnostic code {code!r}") from None
