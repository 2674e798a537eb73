"""Hostile text in every literal position: the module renders, verifies, compiles, loads,
executes nothing, and every value round-trips exactly through the loaded ``POLICY``.

Specs are built by hand (not parsed) so that text the policy language itself would refuse
still reaches the code generator: it must be safe on its own.
"""

from __future__ import annotations

import builtins
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policylang import ir
from policylang import runtime as rt
from policylang.codegen import compiler_version, render_module
from policylang.codegen.verify import verify_module
from policylang.compiler import load_module_code

ROOT = Path(__file__).resolve().parents[2]

KW = r"(?<!\w)(?:{})(?!\w)"
FLAGS = {"I": re.I, "M": re.M, "S": re.S, "X": re.X}

PAYLOAD = "\"\"\"; __import__('os').system('echo pwned') #"

HOSTILE: dict[str, str] = {
    "single quote": "'",
    "double quote": '"',
    "both quotes": 'it\'s "quoted"',
    "triple single": "'''",
    "triple double": '"""',
    "backslash": "\\",
    "trailing backslash": "abc\\",
    "escaped quote": "\\'",
    "escape sequence text": "\\n\\x41\\N{BULLET}\\u2028",
    "newline": "line one\nline two",
    "carriage return": "a\rb",
    "crlf": "a\r\nb",
    "nul": "a\x00b",
    "tab and form feed": "a\tb\x0cc\x0bd",
    "ansi escape": "\x1b[31mred\x1b[0m",
    "line separator": "a\u2028b\u2029c",
    "bidi override": "\u202eevil\u202c",
    "zero width joiner": "a\u200db",
    "bom": "\ufeffx",
    "next line": "a\x85b",
    "lone surrogate": "a\ud800b",
    "jinja expression": "{{ spec.name }}",
    "jinja statement": "{% if true %}x{% endif %}",
    "jinja comment": "{# c #}",
    "triple-quote payload": PAYLOAD,
    "single-quote payload": "'; __import__('builtins').__dict__.update(PWNED=1); '",
    "comment payload": "x\n__import__('builtins').PWNED = 1 #",
    "noqa comment": "# ruff: noqa\n# type: ignore",
    "python identifier": "__import__",
    "synthesized name": "_P0001",
    "very long": "x" * 10_000,
    "very long with spaces": "word " * 2_000,
    "url": "see https://example.com/" + "a" * 150,
    "emoji": "\U0001f600\U0001f4a3",
    "cjk": "\u30c8\u30e9\u30b9\u30c8",
    "combining": "e\u0301",
    "empty": "",
}


def _compiles(pattern: str, flags: tuple[str, ...] = ()) -> bool:
    combined = 0
    for flag in flags:
        combined |= FLAGS[flag]
    try:
        re.compile(pattern, combined)
    except re.error:
        return False
    return True


def hostile_spec(text: str) -> ir.PolicySpec:
    """A policy with ``text`` in every literal position the generator emits."""
    term = text or "x"
    keywords = ir.KeywordsSpec(f"keywords {text}", (term,), KW.format(re.escape(term)), 3, 5)
    regex = text if _compiles(text, ("S",)) else re.escape(text)
    pattern = ir.PatternSpec(f"pattern {text}", regex, ("S",), 4, 6)
    score = ir.ScoreSpec(f"score {text}", text, ">=", 0.5, 5, 7)
    annotation = ir.AnnotationSpec(f"annotation {text}", text, 6, 8)
    detect = ir.AnyOfSpec((ir.AllOfSpec((keywords, pattern)), score, ir.NotSpec(annotation)))
    category = ir.CategorySpec(
        name=text,
        title=text,
        severity=rt.Severity.CRITICAL,
        detect=detect,
        unless=annotation,
        taxonomy=((text, text), ("openai", text)),
        line=2,
        column=1,
    )
    signal = ir.SignalSpec(text, keywords, pattern, 7, 1)
    redirect = ir.RedirectSpec(text, ir.AnyOfSpec((pattern, annotation)), 8, 1)
    counter = rt.Counter(
        text, rt.CounterKind.FAILED_REDIRECTS, rt.CounterScope.CATEGORY, 3, 5, 9, 1
    )
    when = rt.AnyCondition(
        (
            rt.AllConditions(
                (
                    rt.CounterCompare(text, None, ">=", 3, 5),
                    rt.CounterCompare(text, text, "!=", 0, None),
                    rt.SeverityCompare(">=", rt.Severity.HIGH),
                    rt.CategoryIn((text, "other")),
                )
            ),
            rt.NotCondition(rt.SignalMatched(text)),
        )
    )
    protection = ir.ProtectionSpec(
        text, rt.SignalMatched(text), rt.Outcome.ESCALATE, text, text, 10, 10, 1
    )
    rule = ir.RuleSpec(text, when, rt.Outcome.END, text, text, 11, 1)
    return ir.PolicySpec(
        name=text,
        version=text,
        description=text,
        owner=text,
        source_path=text,
        source_sha256=text,
        categories=(category,),
        signals=(signal,),
        redirects=(redirect,),
        counters=(counter,),
        protections=(protection,),
        rules=(rule,),
    )


# --------------------------------------------------------------------- reference


def _detector(spec: ir.DetectorSpec) -> rt.Detector:
    match spec:
        case ir.KeywordsSpec():
            return rt.Keywords(spec.label, re.compile(spec.regex), spec.line, spec.column)
        case ir.PatternSpec():
            flags = 0
            for name in spec.flags:
                flags |= FLAGS[name]
            return rt.Pattern(spec.label, re.compile(spec.regex, flags), spec.line, spec.column)
        case ir.ScoreSpec():
            return rt.Score(spec.label, spec.key, spec.op, spec.threshold, spec.line, spec.column)
        case ir.AnnotationSpec():
            return rt.Annotation(spec.label, spec.name, spec.line, spec.column)
        case ir.AllOfSpec():
            return rt.AllOf(tuple(_detector(item) for item in spec.items))
        case ir.AnyOfSpec():
            return rt.AnyOf(tuple(_detector(item) for item in spec.items))
        case ir.NotSpec():
            return rt.Not(_detector(spec.item))


def expected_policy(spec: ir.PolicySpec) -> rt.Policy:
    """The runtime policy the generated module must build, made directly from the IR."""
    return rt.Policy(
        name=spec.name,
        version=spec.version,
        description=spec.description,
        owner=spec.owner,
        source_path=spec.source_path,
        source_sha256=spec.source_sha256,
        categories=tuple(
            rt.Category(
                c.name,
                c.title,
                c.severity,
                _detector(c.detect),
                None if c.unless is None else _detector(c.unless),
                c.taxonomy,
                c.line,
                c.column,
            )
            for c in spec.categories
        ),
        signals=tuple(
            rt.Signal(
                s.name,
                _detector(s.detect),
                None if s.unless is None else _detector(s.unless),
                s.line,
                s.column,
            )
            for s in spec.signals
        ),
        redirects=tuple(
            rt.Redirect(r.name, _detector(r.detect), r.line, r.column) for r in spec.redirects
        ),
        counters=spec.counters,
        protections=tuple(
            rt.Protection(p.name, p.when, p.action, p.reason, p.message, p.lasts, p.line, p.column)
            for p in spec.protections
        ),
        rules=tuple(
            rt.Rule(r.name, r.when, r.action, r.reason, r.message, r.line, r.column)
            for r in spec.rules
        ),
    )


def check_round_trip(spec: ir.PolicySpec) -> str:
    code = render_module(spec)
    assert code.isascii()
    assert verify_module(code) == []
    compile(code, "<hostile>", "exec", dont_inherit=True)
    policy = load_module_code(code, "hostile")
    assert policy == expected_policy(spec)
    assert not hasattr(builtins, "PWNED")
    return code


# --------------------------------------------------------------------- the table


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_text_round_trips(text: str, capfd: pytest.CaptureFixture[str]) -> None:
    spec = hostile_spec(text)
    code = check_round_trip(spec)
    policy = load_module_code(code, "hostile")
    # Spot checks by position, beyond the whole-object equality above.
    assert policy.name == policy.version == policy.description == policy.owner == text
    assert policy.source_path == text
    category = policy.categories[0]
    assert (category.name, category.title) == (text, text)
    assert category.taxonomy == ((text, text), ("openai", text))
    keywords = policy.signals[0].detect
    assert isinstance(keywords, rt.Keywords)
    assert keywords.pattern.pattern == KW.format(re.escape(text or "x"))
    assert keywords.pattern.search(text or "x") is not None
    assert policy.rules[0].message == policy.rules[0].reason == policy.rules[0].name == text
    assert policy.protections[0].message == text
    out, err = capfd.readouterr()
    assert "pwned" not in out + err


def test_comments_carry_text_only_through_repr() -> None:
    text = "x\n__import__('builtins').PWNED = 1 # noqa: F401 # type: ignore"
    code = render_module(hostile_spec(text))
    comments = [line for line in code.splitlines() if line.lstrip().startswith("#")]
    literal = "\"x\\n__import__('builtins').PWNED = 1 \\x23 noqa\\x3a F401 \\x23 type\\x3a ignore\""
    word = (
        "$'x\\x0a__import__(\\x27\\x62uiltins\\x27).PWNED = 1 "
        "\\x23 noqa\\x3a F401 \\x23 type\\x3a ignore'"
    )
    assert comments == [
        f"# Generated by policylang {compiler_version()} from {literal}.",
        f"# Do not edit; regenerate with: policylang compile {word}",
        "# ruff: noqa: E501",
        "# Regular expressions, compiled once at import; identical ones are shared.",
    ]


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_comments_hold_no_directives(text: str) -> None:
    # No second hash on a comment line, so text cannot plant a tool directive there
    # (noqa, type: ignore, pragma: no cover, pylint: disable).
    for line in render_module(hostile_spec(text)).splitlines():
        if line.startswith("#"):
            assert "#" not in line[1:], line[:200]


def test_hostile_modules_pass_ruff(tmp_path: Path) -> None:
    for index, text in enumerate(HOSTILE.values()):
        (tmp_path / f"hostile_{index:02d}.py").write_text(render_module(hostile_spec(text)))
    config = str(ROOT / "pyproject.toml")
    for args in (["format", "--check", "--diff"], ["check", "--no-cache"]):
        run = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--config", config, str(tmp_path)],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]


# --------------------------------------------------------------------- properties

ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=120)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=ANY_TEXT)
def test_any_text_round_trips(text: str) -> None:
    check_round_trip(hostile_spec(text))


@settings(max_examples=60, deadline=None)
@given(
    name=ANY_TEXT,
    description=ANY_TEXT,
    message=ANY_TEXT,
    key=ANY_TEXT,
    term=ANY_TEXT.filter(bool),
)
def test_independent_texts_round_trip(
    name: str, description: str, message: str, key: str, term: str
) -> None:
    spec = hostile_spec(name)
    keywords = ir.KeywordsSpec(key, (term,), KW.format(re.escape(term)), 1, 1)
    category = spec.categories[0]
    spec = ir.PolicySpec(
        name=name,
        version=key,
        description=description,
        owner=message,
        source_path=description,
        source_sha256=key,
        categories=(
            ir.CategorySpec(
                category.name,
                message,
                category.severity,
                ir.AllOfSpec((keywords, ir.ScoreSpec(term, key, "<", 0.25, 1, 1))),
                None,
                ((key, message),),
                1,
                1,
            ),
        ),
        signals=spec.signals,
        redirects=spec.redirects,
        counters=spec.counters,
        protections=spec.protections,
        rules=(ir.RuleSpec(term, spec.rules[0].when, rt.Outcome.WARN, key, message, 1, 1),),
    )
    check_round_trip(spec)


def test_layout_agrees_with_ruff_at_every_width(tmp_path: Path) -> None:
    # Text of every length around the line limit, so each flat-or-split decision of the
    # layout (calls, one-tuples, parenthesized assignments) is made both ways.
    alphabet = "ab '\"\\\u00e9\n"
    for length in range(0, 121):
        text = "".join(alphabet[(length * 7 + i) % len(alphabet)] for i in range(length))
        (tmp_path / f"width_{length:03d}.py").write_text(render_module(hostile_spec(text)))
    config = str(ROOT / "pyproject.toml")
    for args in (["format", "--check", "--diff"], ["check", "--no-cache"]):
        run = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--config", config, str(tmp_path)],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
