"""Policy text cannot inject code: hostile text in every literal position, end to end.

``test_injection.py`` feeds hand-built IR to the generator. These tests go through the
language itself (``policylang.compiler.compile_source``): string escapes, keyword
normalization, patterns and their flags, declaration names, parameters, composition
chains, tenant files and file names. Each hostile value is either refused with an error
that points at it, or compiles to a module that (a) passes ``verify_module``, (b) parses,
(c) loads into a ``POLICY`` that carries exactly that value, and (d) runs nothing and
imports nothing when loaded.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tokenize
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mypy import api

from policylang import ir
from policylang import runtime as rt
from policylang.codegen.pyrender import py_shell_word
from policylang.codegen.verify import verify_module
from policylang.compiler import CompiledPolicy, compile_source, load_module_code
from policylang.diagnostics import DiagnosticSink, Severity
from policylang.lower import canonical_term, keywords_regex, source_path
from policylang.source import SourceFile

ROOT = Path(__file__).resolve().parents[2]
PATH = "hostile.policy"
FLAGS = {"i": re.I, "m": re.M, "s": re.S, "x": re.X}

# --------------------------------------------------------------------- the policy

# One valid policy with every literal position the generator emits. A position is a
# `{KEY}` placeholder; `fill` puts the hostile literal in one and benign text elsewhere.
TEMPLATE = """\
policy {NAME} {{
  version: {VERSION}
  description: {DESCRIPTION}
  owner: {OWNER}
}}

param end_message {{ value: {PARAM} tunable: true }}

list words = [{TERM_LIST}, "weapon"]

pattern how_to = /{REGEX}/{FLAGS}

category harm {{
  title: {TITLE}
  severity: critical
  maps_to: {{ mlcommons: {TAXONOMY} }}
  detect: keywords words and pattern how_to or keywords {TERM_INLINE}
       or score {SCORE_KEY} >= 0.5 or annotation {ANNOTATION}
}}

signal {SIGNAL} {{ detect: keywords ["kill myself"] }}
redirect refusal {{ detect: annotation "redirect" }}
counter failed_redirects {{ counts: failed_redirects }}

protection imminent_risk {{
  when: {SIGNAL}
  action: escalate
  reason: {PROTECTION_REASON}
  message: {PROTECTION_MESSAGE}
}}

rule end_harm {{
  when: failed_redirects >= 2 and severity >= critical
  action: end
  reason: {RULE_REASON}
  message: end_message
}}

rule warn_harm {{
  when: failed_redirects >= 1 and severity >= critical
  action: warn
  reason: {WARN_REASON}
  message: {WARN_MESSAGE}
}}
"""

BENIGN = {
    "NAME": "p",
    "VERSION": '"1.0.0"',
    "DESCRIPTION": '"d"',
    "OWNER": '"o"',
    "PARAM": '"Ending this conversation."',
    "TERM_LIST": '"bomb"',
    "REGEX": r"\bhow to\b",
    "FLAGS": "",
    "TITLE": '"Harm"',
    "TAXONOMY": '"cbrne"',
    "TERM_INLINE": '"gun"',
    "SCORE_KEY": '"harm"',
    "ANNOTATION": '"fiction"',
    "SIGNAL": "risk",
    "PROTECTION_REASON": '"imminent-risk"',
    "PROTECTION_MESSAGE": '"Help is available."',
    "RULE_REASON": '"persistent-harm"',
    "WARN_REASON": '"warning"',
    "WARN_MESSAGE": '"Please stop."',
}


def policy_string(text: str, escape_all: bool = False) -> str:
    """``text`` as a string literal of the policy language.

    Quote, backslash, newline and tab take the short escapes; CR (which the reader would
    turn into a line break) and surrogates take ``\\u{...}``; with ``escape_all`` so does
    every other character outside printable ASCII, else it is written raw.
    """
    out: list[str] = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif (
            char == "\r"
            or 0xD800 <= ord(char) <= 0xDFFF
            or (escape_all and not 0x20 <= ord(char) < 0x7F)
        ):
            out.append(f"\\u{{{ord(char):X}}}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def regex_literal(pattern: str) -> str:
    """The body of ``/pattern/``: every ``/`` not already escaped gets a backslash."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            out.append(pattern[index : index + 2])
            index += 2
            continue
        out.append("\\/" if char == "/" else char)
        index += 1
    return "".join(out)


def fill(key: str, literal: str) -> tuple[str, int]:
    """The policy text with ``literal`` at ``key``, and the offset where it starts."""
    marker = "\x00HOSTILE\x00"
    values = dict(BENIGN, **{key: marker})
    text = TEMPLATE.format(**values)
    start = text.index(marker)
    return text.replace(marker, literal), start


# --------------------------------------------------------------------- checks


def _leaves(detector: rt.Detector) -> Iterator[rt.Detector]:
    if isinstance(detector, rt.AllOf | rt.AnyOf):
        for item in detector.items:
            yield from _leaves(item)
    elif isinstance(detector, rt.Not):
        yield from _leaves(detector.item)
    else:
        yield detector


def _detector(policy: rt.Policy, kind: type, label: str) -> rt.Detector:
    found = [
        leaf
        for leaf in _leaves(policy.categories[0].detect)
        if type(leaf) is kind and getattr(leaf, "label", "").startswith(label)
    ]
    assert len(found) == 1, found
    return found[0]


def _keywords_regex(*terms: str) -> str:
    return keywords_regex(canonical_term(term) for term in terms)


# Where each position's value lands in the loaded POLICY; keyword positions compare the
# keyword pattern with the one built from the term by the language's own rules.
Getter = Callable[[rt.Policy], object]
POSITIONS: dict[str, tuple[str, Getter, Callable[[str], object]]] = {
    "policy version": ("VERSION", lambda p: p.version, str),
    "policy description": ("DESCRIPTION", lambda p: p.description, str),
    "policy owner": ("OWNER", lambda p: p.owner, str),
    "category title": ("TITLE", lambda p: p.categories[0].title, str),
    "maps_to code": ("TAXONOMY", lambda p: p.categories[0].taxonomy[0][1], str),
    "keyword in a list": (
        "TERM_LIST",
        lambda p: _detector(p, rt.Keywords, "keywords words").pattern.pattern,  # type: ignore[union-attr]
        lambda text: _keywords_regex(text, "weapon"),
    ),
    "inline keyword": (
        "TERM_INLINE",
        lambda p: _detector(p, rt.Keywords, 'keywords "').pattern.pattern,  # type: ignore[union-attr]
        lambda text: _keywords_regex(text),
    ),
    "score key": ("SCORE_KEY", lambda p: _detector(p, rt.Score, "score").key, str),  # type: ignore[union-attr]
    "annotation label": (
        "ANNOTATION",
        lambda p: _detector(p, rt.Annotation, "annotation").name,  # type: ignore[union-attr]
        str,
    ),
    "protection reason": ("PROTECTION_REASON", lambda p: p.protections[0].reason, str),
    "protection message": ("PROTECTION_MESSAGE", lambda p: p.protections[0].message, str),
    "rule reason": ("RULE_REASON", lambda p: p.rules[0].reason, str),
    "rule message": ("WARN_MESSAGE", lambda p: p.rules[1].message, str),
    "param used as a message": ("PARAM", lambda p: p.rules[0].message, str),
}


def runtime_of(value: object) -> object:
    """The runtime object the module must build for an IR value, made directly."""
    if isinstance(value, tuple):
        return tuple(runtime_of(item) for item in value)
    if type(value) is ir.KeywordsSpec:
        return rt.Keywords(value.label, re.compile(value.regex), value.line, value.column)
    if type(value) is ir.PatternSpec:
        flags = 0
        for name in value.flags:
            flags |= FLAGS[name.lower()]
        return rt.Pattern(value.label, re.compile(value.regex, flags), value.line, value.column)
    if type(value) is ir.AllOfSpec:
        return rt.AllOf(tuple(runtime_of(item) for item in value.items))  # type: ignore[misc]
    if type(value) is ir.AnyOfSpec:
        return rt.AnyOf(tuple(runtime_of(item) for item in value.items))  # type: ignore[misc]
    if type(value) is ir.NotSpec:
        return rt.Not(runtime_of(value.item))  # type: ignore[arg-type]
    if dataclasses.is_dataclass(value) and type(value).__module__ == ir.__name__:
        target = getattr(rt, type(value).__name__.removesuffix("Spec"))
        names = {field.name for field in dataclasses.fields(target)}
        return target(
            **{
                field.name: runtime_of(getattr(value, field.name))
                for field in dataclasses.fields(value)
                if field.name in names
            }
        )
    return value


def check_module(compiled: CompiledPolicy, marker: Path) -> rt.Policy:
    """Properties (a) to (d) of a compiled module; returns its loaded POLICY."""
    code = compiled.code
    assert code.isascii()
    assert verify_module(code) == []  # (a)
    tree = ast.parse(code)  # (b)
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {"__future__", "re", "typing", "policylang"}, imported
    policy = load_module_code(code, "hostile")
    assert policy == runtime_of(compiled.spec)  # (c): the whole IR, value for value
    assert not marker.exists()  # (d)
    check_comments(code)
    return policy


_COMMENT_SHAPES = re.compile(
    r"# Generated by policylang [0-9A-Za-z.+-]+ from (?P<literal>[^#:]*)\.|"
    r"# Do not edit; regenerate with: policylang compile [^#:]*|"
    r"# ruff: noqa: E501|"
    r"# Regular expressions, compiled once at import; identical ones are shared\."
)


def check_comments(code: str) -> None:
    """Every comment is one of the template's; policy text adds no `#` and no `:`."""
    tokens = tokenize.generate_tokens(io.StringIO(code).readline)
    for token in tokens:
        if token.type == tokenize.COMMENT:
            assert _COMMENT_SHAPES.fullmatch(token.string), token.string[:200]


def assert_refused_at(sink: DiagnosticSink, path: str, start: int, end: int) -> None:
    """Errors, none internal, one of them pointing into ``[start, end)`` of ``path``."""
    errors = [d for d in sink if d.severity is Severity.ERROR]
    assert errors
    assert not [d for d in errors if d.code == "PL900"], [d.notes for d in errors]
    assert any(
        d.path == path and start <= d.primary.span.start and d.primary.span.end <= end
        for d in errors
    ), [(d.code, d.message, d.path, d.primary.span, (start, end)) for d in errors]


def compile_position(key: str, literal: str) -> tuple[CompiledPolicy | None, DiagnosticSink, int]:
    text, start = fill(key, literal)
    sink = DiagnosticSink()
    return compile_source(SourceFile.from_text(PATH, text), sink), sink, start


def check_position(position: str, text: str, marker: Path, escape_all: bool = False) -> bool:
    """``text`` at ``position``: refused where it stands, or safe and exact. Whether it compiled."""
    key, getter, expected = POSITIONS[position]
    literal = policy_string(text, escape_all)
    compiled, sink, start = compile_position(key, literal)
    if compiled is None:
        assert_refused_at(sink, PATH, start, start + len(literal))
        return False
    policy = check_module(compiled, marker)
    assert getter(policy) == expected(text)
    return True


# --------------------------------------------------------------------- payloads


def payloads(marker: Path) -> dict[str, str]:
    """Hostile strings; the code payloads would create ``marker`` if they ever ran."""
    touch = f'os.system("touch {marker}")'
    touch1 = f"os.system('touch {marker}')"
    return {
        "double quote": '"',
        "single quote": "'",
        "triple double": '"""',
        "triple single": "'''",
        "backslash": "\\",
        "trailing backslash": "abc\\",
        "escape text": "\\n\\x41\\u2028\\N{BULLET}\\",
        "newline": "line one\nline two",
        "carriage return": "a\rb",
        "crlf": "a\r\nb",
        "nul": "a\x00b",
        "line separators": "a\u2028b\u2029c",
        "next line": "a\x85b",
        "other breaks": "a\x0bb\x0cc\x1cd\x1de\x1ef",
        "bidi controls": "\u202eevil\u202c \u2066a\u2069 \u2067b\u2068c\u2069 \u200fd",
        "zero width": "a\u200bb\u200cc\u200dd\u2060e\ufefff",
        "ansi and delete": "\x1b[31mred\x1b[0m\x7f",
        "lone surrogate": "a\ud800b",
        "jinja": "{{ spec.name }}{% if true %}x{% endif %}{# c #}",
        "jinja unclosed": "{{ {% {#",
        "format markers": "%s %(name)s %d {} {0} {name!r} %%",
        "very long": "x" * 20_000,
        "very long words": "word " * 4_000,
        "payload double": f'"); import os; {touch} #',
        "payload single": f"'); import os; {touch1} #",
        "payload triple double": f'"""); import os; {touch} #',
        "payload triple single": f"'''); import os; {touch1} #",
        "payload backslash": f'\\"); import os; {touch} #',
        "payload newline": f'x"\nimport os\n{touch}\n#',
        "payload line separator": f'x"\u2028import os\u2028{touch}\u2028#',
        "payload comment": f"x\n# ruff: noqa\n# type: ignore\nimport os; {touch}",
        "payload f-string": f'{{__import__("os").system("touch {marker}")}}',
        "payload jinja": (
            "{{ self.__init__.__globals__.__builtins__.__import__('os')"
            f".system('touch {marker}') }}}}"
        ),
        "payload directives": "# noqa # type: ignore # pragma: no cover pylint: disable=all",
    }


PAYLOAD_NAMES = list(payloads(Path("/MARKER")))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "MARKER"


FREE_TEXT = [position for position in POSITIONS if position != "maps_to code"]


def check_everywhere(text: str, marker: Path, escape_all: bool) -> list[str]:
    """``text`` in every free-text position at once, or, if refused, one at a time.

    Returns the positions where it compiled.
    """
    literal = policy_string(text, escape_all)
    values = dict(BENIGN, **{POSITIONS[position][0]: literal for position in FREE_TEXT})
    sink = DiagnosticSink()
    compiled = compile_source(SourceFile.from_text(PATH, TEMPLATE.format(**values)), sink)
    if compiled is None:
        return [p for p in FREE_TEXT if check_position(p, text, marker, escape_all)]
    policy = check_module(compiled, marker)
    for position in FREE_TEXT:
        _, getter, expected = POSITIONS[position]
        assert getter(policy) == expected(text), position
    return FREE_TEXT


@pytest.mark.parametrize("name", PAYLOAD_NAMES)
def test_named_payloads_in_every_string_position(name: str, marker: Path) -> None:
    text = payloads(marker)[name]
    # Raw and fully escaped spellings differ only outside printable ASCII.
    spellings = (False, True) if re.search(r"[^\x20-\x7e]", text) else (False,)
    for escape_all in spellings:
        compiled = check_everywhere(text, marker, escape_all)
        if name == "lone surrogate":  # `\u{D800}`, refused (PL105) wherever it is
            assert compiled == []
        elif name == "very long":  # a keyword may be over a limit on policy size
            assert set(FREE_TEXT) - set(compiled) <= {"keyword in a list", "inline keyword"}
        else:
            assert compiled == FREE_TEXT
        # maps_to codes are a closed set: any of these is refused, at the code.
        assert not check_position("maps_to code", text, marker, escape_all)


def test_a_surrogate_escape_is_refused_where_it_is_written(marker: Path) -> None:
    for position, (key, _, _) in POSITIONS.items():
        literal = '"a\\u{D800}b"'
        compiled, sink, start = compile_position(key, literal)
        assert compiled is None, position
        assert_refused_at(sink, PATH, start + 2, start + 10)
        assert "PL105" in [d.code for d in sink]


def test_a_raw_lone_surrogate_is_refused_not_an_internal_error() -> None:
    # Only text handed over as a str can hold one; it used to crash hashing (PL900).
    for key in ("VERSION", "PROTECTION_MESSAGE", "TERM_LIST"):
        text, start = fill(key, '"a\udcffb"')
        sink = DiagnosticSink()
        assert compile_source(SourceFile.from_text(PATH, text), sink) is None
        [error] = [d for d in sink if d.severity is Severity.ERROR]
        assert (error.code, error.primary.span.start) == ("PL001", start + 2)
        assert "lone surrogate U+DCFF" in error.message
    text = 'policy p {\n  version: "1"\n}\n# \ud800 in a comment\n'
    sink = DiagnosticSink()
    assert compile_source(SourceFile.from_text(PATH, text), sink) is None
    assert [d.code for d in sink] == ["PL001"]


# --------------------------------------------------------------------- patterns

REGEXES: dict[str, str] = {
    "quotes": "a\"b'c",
    "triple quotes": "a\"\"\"b'''c",
    "backslashes": r"a\\b\\",
    "named escape": r"\N{BULLET}",
    "unicode escapes": r"\u2028\U0001F600\x00",
    "raw separators": "a\u2028b\u2029c\x85d",
    "raw controls": "a\x00b\x0bc\x1bd",
    "bidi": "\u202eabc\u2066d\u2069",
    "slash": "a/b",
    "jinja": "{{x}}y{%z%}{#",
    "format": "%s{0}",
    "verbose comment": '(?x)a # """); import os #',
    "payload": '"\\); import os; os\\.system\\("touch MARKER"\\) #',
    "long": "a" * 900,
}


@pytest.mark.parametrize("flags", ["", "i", "msix", "x"])
@pytest.mark.parametrize("name", REGEXES)
def test_patterns_and_flags(name: str, flags: str, marker: Path) -> None:
    pattern = REGEXES[name].replace("MARKER", str(marker))
    text = TEMPLATE.format(**dict(BENIGN, REGEX=regex_literal(pattern), FLAGS=flags))
    sink = DiagnosticSink()
    compiled = compile_source(SourceFile.from_text(PATH, text), sink)
    assert compiled is not None, [(d.code, d.message) for d in sink]
    policy = check_module(compiled, marker)
    compiled_pattern = _detector(policy, rt.Pattern, "pattern how_to").pattern  # type: ignore[union-attr]
    assert compiled_pattern.pattern == pattern
    wanted = 0
    for letter in flags:
        wanted |= FLAGS[letter]
    assert compiled_pattern.flags == re.compile(pattern, wanted).flags


@pytest.mark.parametrize("flags", ["a", "u", "L", "ximport", "ss"])
def test_unknown_flags_are_refused_where_written(flags: str) -> None:
    text, start = fill("FLAGS", flags)
    sink = DiagnosticSink()
    if not flags.islower():
        # An upper-case letter cannot even lex as a flag.
        assert compile_source(SourceFile.from_text(PATH, text), sink) is None
        assert [d for d in sink if d.severity is Severity.ERROR]
        return
    compiled = compile_source(SourceFile.from_text(PATH, text), sink)
    if flags == "ss":  # a repeated known flag is still just `s`
        assert compiled is not None
        return
    assert compiled is None
    assert_refused_at(sink, PATH, start - 1, start + len(flags))


# --------------------------------------------------------------------- names

NAMES = [
    "__import__",
    "__builtins__",
    "__all__",
    "rt",
    "re",
    "os",
    "Final",
    "POLICY",
    "CATEGORIES",
    "_P0001",
    "eval",
    "import",
    "None",
    "True",
    "class",
    "match",
    "_",
    "a-b",
    "noqa",
    "x" * 2_000,
]


@pytest.mark.parametrize("name", NAMES, ids=lambda name: name[:20])
def test_declaration_names_are_data(name: str, marker: Path) -> None:
    for key, getter in (
        ("NAME", lambda p: p.name),
        ("SIGNAL", lambda p: p.signals[0].name),
    ):
        text, _ = fill(key, name)
        sink = DiagnosticSink()
        compiled = compile_source(SourceFile.from_text(PATH, text), sink)
        assert compiled is not None, [(d.code, d.message) for d in sink]
        assert getter(check_module(compiled, marker)) == name


# --------------------------------------------------------------------- properties

ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=80)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.sampled_from(list(POSITIONS)), text=ANY_TEXT, escape_all=st.booleans())
def test_any_text_in_any_string_position(position: str, text: str, escape_all: bool) -> None:
    with tempfile.TemporaryDirectory() as directory:
        check_position(position, text, Path(directory) / "MARKER", escape_all)


@settings(max_examples=80, deadline=None)
@given(
    text=st.text(
        alphabet=st.characters(codec=None, exclude_categories=("Cs",), exclude_characters="\n\r"),
        min_size=1,
        max_size=60,
    ),
    escape=st.booleans(),
    flags=st.sets(st.sampled_from("imsx")).map(lambda letters: "".join(sorted(letters))),
)
def test_any_pattern_text(text: str, escape: bool, flags: str) -> None:
    pattern = re.escape(text) if escape else text
    if "\\/" in pattern:
        pattern = pattern.replace("\\/", "/")  # `\/` is how a pattern writes `/`
    values = dict(BENIGN, REGEX=regex_literal(pattern), FLAGS=flags)
    text_ = TEMPLATE.format(**values)
    start = text_.index("pattern how_to = /") + len("pattern how_to = ")
    sink = DiagnosticSink()
    compiled = compile_source(SourceFile.from_text(PATH, text_), sink)
    if compiled is None:
        end = start + len(regex_literal(pattern)) + 2 + len(flags)
        assert_refused_at(sink, PATH, start, end)
        return
    with tempfile.TemporaryDirectory() as directory:
        policy = check_module(compiled, Path(directory) / "MARKER")
    found = _detector(policy, rt.Pattern, "pattern how_to")
    assert found.pattern.pattern == pattern  # type: ignore[union-attr]


@settings(max_examples=60, deadline=None)
@given(name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,40}", fullmatch=True))
def test_any_declaration_name(name: str) -> None:
    text = TEMPLATE.format(**dict(BENIGN, NAME=name))
    sink = DiagnosticSink()
    compiled = compile_source(SourceFile.from_text(PATH, text), sink)
    if compiled is None:  # a word the language reserves
        assert_refused_at(sink, PATH, 7, 7 + len(name))
        return
    with tempfile.TemporaryDirectory() as directory:
        assert check_module(compiled, Path(directory) / "MARKER").name == name


# --------------------------------------------------------------------- composition

BASE = TEMPLATE.format(**dict(BENIGN, NAME="base", VERSION="{BASE_VERSION}")).replace(
    "{BASE_VERSION}", "%(base_version)s"
)

FILE_NAMES = {
    "newline": "p\nq",
    "carriage return": "p\rq",
    "triple double": 'p"""q',
    "triple single": "p'''q",
    "both quotes": 'it\'s "q"',
    "ruff noqa": "# ruff: noqa",
    "pylint": "p pylint: disable=all",
    "line separators": "p\u2028q\u2029r\x85s",
    "bidi": "p\u202eq\u2066r\u2069",
    "zero width": "p\u200bq",
    "backslash": "p\\q",
    "jinja": "p{{ x }}{% y %}{# z",
    "format": "p%s{}",
    "command substitution": "p$(touch MARKER)`touch MARKER`",
    "leading dash": "-o q",
    "not utf-8": os.fsdecode(b"p\xff\xfeq"),
    "long": "p" * 200,
}


def _write(path: Path, text: str) -> bool:
    try:
        path.write_text(text, encoding="utf-8")
    except (OSError, UnicodeEncodeError, ValueError):
        return False
    return True


@pytest.mark.parametrize("name", FILE_NAMES)
def test_chain_tenant_and_file_names(
    name: str, tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stem = FILE_NAMES[name].replace("MARKER", str(marker).replace("/", "_"))
    hostile = payloads(marker)["payload triple double"] + "\u2028\u202e{{x}}\x00"
    monkeypatch.chdir(tmp_path)
    # The base's name is written in `extends:`, where a surrogate cannot be (PL105).
    surrogate = re.search("[\ud800-\udfff]", stem) is not None
    base_name = "base.policy" if surrogate else f"{stem}.base.policy"
    if not _write(tmp_path / base_name, BASE % {"base_version": policy_string(hostile)}):
        pytest.skip("the file system refuses this name")
    child_name, tenant_name = f"{stem}.policy", f"{stem}.tenant"
    child = (
        f"policy child {{ version: {policy_string(hostile)}"
        f" extends: {policy_string(base_name)} }}\n"
        f"override rule warn_harm {{ message: {policy_string(hostile)} }}\n"
    )
    tenant = (
        f"tenant acme {{ version: {policy_string(hostile)}"
        f" description: {policy_string(hostile)} policy: child"
        f" set: {{ end_message: {policy_string(hostile)} }} }}\n"
    )
    if not (_write(tmp_path / child_name, child) and _write(tmp_path / tenant_name, tenant)):
        pytest.skip("the file system refuses this name")
    sink = DiagnosticSink()
    compiled = compile_source(SourceFile.from_text(child_name, child), sink, tenant=tenant_name)
    assert compiled is not None, [(d.code, d.message) for d in sink]
    policy = check_module(compiled, marker)
    assert [(link.role, link.name, link.version) for link in policy.chain] == [
        ("base", "base", hostile),
        ("policy", "child", hostile),
        ("tenant", "acme", hostile),
    ]
    assert policy.version == hostile
    assert policy.rules[0].message == hostile  # the tenant's setting of end_message
    assert policy.rules[1].message == hostile  # the override's message
    assert policy.source_path == source_path(child_name)
    first, second = compiled.code.splitlines()[:2]
    literal = re.fullmatch(r"# Generated by policylang \S+ from (.*)\.", first)
    assert literal is not None and ast.literal_eval(literal.group(1)) == source_path(child_name)
    words = [py_shell_word(source_path(name)) for name in (child_name, tenant_name)]
    assert second == (
        f"# Do not edit; regenerate with: policylang compile {words[0]} --tenant {words[1]}"
    )


def test_a_tenant_refused_where_its_text_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "p.policy").write_text(TEMPLATE.format(**BENIGN), encoding="utf-8")
    tenant = 'tenant acme { set: { end_message: "a\\u{D800}b" } }\n'
    (tmp_path / "t.tenant").write_text(tenant, encoding="utf-8")
    sink = DiagnosticSink()
    text = TEMPLATE.format(**BENIGN)
    path, tenant_path = str(tmp_path / "p.policy"), str(tmp_path / "t.tenant")
    assert compile_source(SourceFile.from_text(path, text), sink, tenant=tenant_path) is None
    start = tenant.index("\\u{")
    assert_refused_at(sink, str(tmp_path / "t.tenant"), start, start + 8)


# --------------------------------------------------------------------- the shell line

SHELL_WORDS = [
    "policies/default.policy",
    "a b.policy",
    "c$(touch MARKER).policy",
    "`touch MARKER`.policy",
    'it\'s "quoted".policy',
    "x\ny.policy",
    "# ruff: noqa.policy",
    "caf\u00e9\u2028\u202e.policy",
    os.fsdecode(b"p\xff.policy"),
    "!!.policy",
    "a\\b.policy",
    "a\n0b",  # a hex digit right after an escape
    "-o.policy",
    "",
]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_regenerate_line_is_one_inert_shell_word(tmp_path: Path) -> None:
    words = [py_shell_word(value) for value in SHELL_WORDS]
    for word in words:
        assert "#" not in word and ":" not in word and "\n" not in word and word.isascii()
    script = "for arg in " + " ".join(words) + '; do printf "%s\\0" "$arg"; done'
    run = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, check=True)
    got = run.stdout.split(b"\0")[:-1]
    wanted = [os.fsencode("./" + v if v.startswith("-") else v) for v in SHELL_WORDS]
    assert got == wanted
    assert list(tmp_path.iterdir()) == []  # nothing ran


def test_plain_paths_keep_their_double_quotes() -> None:
    assert py_shell_word("policies/default.policy") == '"policies/default.policy"'
    assert py_shell_word("a b") == "$'a b'"
    assert py_shell_word("-x") == '"./-x"'


# --------------------------------------------------------------------- running them


def _sample_modules(marker: Path) -> dict[str, str]:
    """Modules with one payload in every free-text position at once."""
    out: dict[str, str] = {}
    for name, text in payloads(marker).items():
        if name in ("lone surrogate", "very long"):
            continue
        literal = policy_string(text)
        values = dict(BENIGN)
        for key, _, _ in POSITIONS.values():
            if key != "TAXONOMY":
                values[key] = literal
        sink = DiagnosticSink()
        compiled = compile_source(SourceFile.from_text(PATH, TEMPLATE.format(**values)), sink)
        assert compiled is not None, (name, [(d.code, d.message) for d in sink])
        out[re.sub(r"\W", "_", name)] = compiled.code
    return out


_AUDIT = r"""
import json, sys
import policylang.compiler
codes = {}
for path in sys.argv[1:]:
    with open(path, encoding="ascii") as handle:
        codes[path] = handle.read()
events = []
def hook(event, args):
    # compile and exec are load_module_code's own; nothing else may happen.
    if event not in ("compile", "exec"):
        events.append([event, repr(args)[:200]])
sys.addaudithook(hook)
for path, code in codes.items():
    before = len(events)
    policylang.compiler.load_module_code(code, "audited")
    events[before:] = [[path, *event] for event in events[before:]]
    events.append([path, "loaded", ""])
before = len(events)
import xml.dom  # the control: the hook does see an import
control = [event[0] for event in events[before:]]
events[before:] = [["control", ",".join(sorted(set(control))), ""]]
sys.stdout.write(json.dumps(events))
"""


def test_loading_runs_nothing_and_imports_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    paths = []
    for name, code in _sample_modules(marker).items():
        path = tmp_path / f"m_{name}.py"
        path.write_text(code, encoding="ascii")
        paths.append(str(path))
    run = subprocess.run(
        [sys.executable, "-c", _AUDIT, *paths],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    # No import, no open, no os.system, no subprocess: no audit event at all.
    events = json.loads(run.stdout)
    assert events[:-1] == [[path, "loaded", ""] for path in paths]
    assert "import" in events[-1][1].split(",")
    assert not marker.exists()


def test_hostile_modules_pass_mypy_strict_and_ruff(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    modules = _sample_modules(marker)
    for name in ("payload_double", "payload_newline", "bidi_controls", "jinja", "escape_text"):
        (tmp_path / f"hostile_{name}.py").write_text(modules[name], encoding="ascii")
    config = str(ROOT / "pyproject.toml")
    stdout, stderr, status = api.run(
        [
            "--strict",
            "--no-incremental",
            "--cache-dir=/dev/null",
            "--config-file",
            config,
            *sorted(str(path) for path in tmp_path.glob("hostile_*.py")),
            str(ROOT / "policylang" / "runtime.py"),
        ]
    )
    assert status == 0, stdout + stderr
    for name, code in modules.items():
        (tmp_path / f"all_{name}.py").write_text(code, encoding="ascii")
    for args in (["format", "--check", "--diff"], ["check", "--no-cache"]):
        run = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--config", config, str(tmp_path)],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
