"""The py_* escaping filters, the finalize guard and the ruff-compatible layout."""

from __future__ import annotations

import ast
import re

import jinja2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from policylang import runtime as rt
from policylang.codegen import _environment
from policylang.codegen.pyrender import (
    RUNTIME_ALIAS,
    Call,
    PySource,
    Tup,
    canonical_flags,
    finalize,
    is_overlong,
    layout,
    py_bool,
    py_comment,
    py_enum,
    py_flags,
    py_float,
    py_int,
    py_name,
    py_regex,
    py_str,
    py_token,
    runtime_class,
)


class Sneaky(str):
    """A str subclass that would inject code if its repr were trusted."""

    def __repr__(self) -> str:
        return "__import__('os').system('echo pwned')"


class SneakyInt(int):
    def __repr__(self) -> str:
        return "__import__('os')"


# --------------------------------------------------------------------- py_str


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", '""'),
        ("plain", '"plain"'),
        ("it's", '"it\'s"'),
        ('say "hi"', "'say \"hi\"'"),
        ("a'b\"c", '"a\'b\\"c"'),
        ('a"b"c\'', "'a\"b\"c\\''"),
        ("back\\slash", '"back\\\\slash"'),
        ("line\nbreak\r", '"line\\nbreak\\r"'),
        ("nul\x00", '"nul\\x00"'),
        ("\u2028\u202e\u200d", '"\\u2028\\u202e\\u200d"'),
        ("caf\u00e9 \U0001f600", '"caf\\xe9 \\U0001f600"'),
        ("\ud800", '"\\ud800"'),
    ],
)
def test_py_str_escapes_to_ascii(value: str, expected: str) -> None:
    out = py_str(value)
    assert type(out) is PySource
    assert out == expected
    assert out.isascii()
    assert ast.literal_eval(out) == value


@given(st.text())
def test_py_str_round_trips(value: str) -> None:
    out = py_str(value)
    assert out.isascii()
    assert "\n" not in out
    assert ast.literal_eval(out) == value


@given(st.text(alphabet=st.sampled_from("ab'\"\\ ")))
def test_py_str_quotes_like_ruff(value: str) -> None:
    out = py_str(value)
    # ruff format prefers double quotes unless that needs more escapes.
    expected_quote = "'" if value.count('"') > value.count("'") else '"'
    assert out[0] == out[-1] == expected_quote


def test_py_str_assign_parenthesizes_like_ruff() -> None:
    short = "x" * 10
    assert py_str(short, assign="POLICY_NAME") == f'"{short}"'
    fits_alone = "x" * 90  # too long after `POLICY_NAME: Final = `, fits on its own line
    assert py_str(fits_alone, assign="POLICY_NAME") == f'(\n    "{fits_alone}"\n)'
    too_long = "x" * 200  # fits nowhere: left as it is
    assert py_str(too_long, assign="POLICY_NAME") == f'"{too_long}"'


@pytest.mark.parametrize("bad", [Sneaky("x"), b"x", 1, None, ["x"]])
def test_py_str_rejects_non_str(bad: object) -> None:
    with pytest.raises(TypeError):
        py_str(bad)


# --------------------------------------------------------------------- numbers, bools


def test_py_int() -> None:
    assert py_int(3) == "3"
    assert py_int(-12) == "-12"
    assert type(py_int(0)) is PySource


@pytest.mark.parametrize("bad", [True, False, 1.0, "1", SneakyInt(1), None])
def test_py_int_rejects(bad: object) -> None:
    with pytest.raises(TypeError):
        py_int(bad)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.9, "0.9"), (1.0, "1.0"), (1e16, "1e16"), (1.5e-07, "1.5e-07"), (-0.0, "-0.0")],
)
def test_py_float(value: float, expected: str) -> None:
    assert py_float(value) == expected
    assert float(py_float(value)) == value


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_py_float_round_trips(value: float) -> None:
    assert ast.literal_eval(py_float(value)) == value


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_py_float_rejects_non_finite(bad: float) -> None:
    with pytest.raises(ValueError):
        py_float(bad)


@pytest.mark.parametrize("bad", [1, True, "0.5", None])
def test_py_float_rejects_non_float(bad: object) -> None:
    with pytest.raises(TypeError):
        py_float(bad)


def test_py_bool() -> None:
    assert py_bool(True) == "True"
    assert py_bool(False) == "False"
    with pytest.raises(TypeError):
        py_bool(1)


# --------------------------------------------------------------------- names, tokens


@pytest.mark.parametrize("name", ["_P0001", "_P9999", "P1", "POLICY_NAME", "_cond_0003"])
def test_py_name_accepts_synthesized(name: str) -> None:
    assert py_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "1abc",
        "__import__",
        "__all__",
        "__P1",
        "a-b",
        "a b",
        "x\n",
        "caf\u00e9",
        "\uff21",  # fullwidth A: a valid Python identifier, but not a synthesized one
        "import",
        "None",
        "match",  # soft keyword
        "eval",
        "open",
        "re",
        "rt",
        "Final",
    ],
)
def test_py_name_rejects(name: str) -> None:
    with pytest.raises(ValueError):
        py_name(name)


def test_py_name_rejects_subclass() -> None:
    with pytest.raises(TypeError):
        py_name(Sneaky("_P0001"))


def test_py_token() -> None:
    assert py_token("0.1.0") == "0.1.0"
    assert py_token("1.0.0rc1+local.3") == "1.0.0rc1+local.3"
    for bad in ["", "0.1 0", "0.1\n# x", "'x'", "-1"]:
        with pytest.raises(ValueError):
            py_token(bad)
    with pytest.raises(TypeError):
        py_token(Sneaky("0.1.0"))


# --------------------------------------------------------------------- regexes, flags


def test_py_regex_compiles_first() -> None:
    assert py_regex(r"\bsarin\b") == '"\\\\bsarin\\\\b"'
    assert re.compile(ast.literal_eval(py_regex(r"\bsarin\b"))).search("sarin gas")
    with pytest.raises(ValueError, match="invalid regular expression"):
        py_regex("(unclosed")
    with pytest.raises(TypeError):
        py_regex(Sneaky("x"))


def test_py_regex_honours_flags() -> None:
    verbose = "a # a comment with an unbalanced ("
    with pytest.raises(ValueError):
        py_regex(verbose)
    assert ast.literal_eval(py_regex(verbose, ("X",))) == verbose


def test_py_flags() -> None:
    assert py_flags(("S",)) == "re.S"
    assert py_flags(("S", "M", "X", "I")) == "re.I | re.M | re.S | re.X"
    assert py_flags(("S", "S")) == "re.S"
    assert py_flags(()) == "0"
    assert canonical_flags(("X", "I", "X")) == ("I", "X")
    with pytest.raises(ValueError):
        py_flags(("A",))
    with pytest.raises(ValueError):
        py_flags(("re.S; import os",))
    with pytest.raises(TypeError):
        py_flags(["S"])
    with pytest.raises(TypeError):
        py_flags((Sneaky("S"),))


# --------------------------------------------------------------------- enums


def test_py_enum_table() -> None:
    assert py_enum(rt.Severity.CRITICAL) == "rt.Severity.CRITICAL"
    assert py_enum(rt.Outcome.END) == "rt.Outcome.END"
    assert py_enum(rt.CounterKind.FAILED_REDIRECTS) == "rt.CounterKind.FAILED_REDIRECTS"
    assert py_enum(rt.CounterScope.CONVERSATION) == "rt.CounterScope.CONVERSATION"
    for enum_type in (rt.Severity, rt.Outcome, rt.CounterKind, rt.CounterScope):
        for member in enum_type:
            assert py_enum(member) == f"{RUNTIME_ALIAS}.{enum_type.__name__}.{member.name}"


@pytest.mark.parametrize("bad", [4, "CRITICAL", "critical", None, re.RegexFlag.I])
def test_py_enum_rejects(bad: object) -> None:
    # Severity is an IntEnum: the int 4 equals Severity.CRITICAL but is not one.
    with pytest.raises(TypeError):
        py_enum(bad)


def test_runtime_class() -> None:
    assert runtime_class(rt.Keywords) == "rt.Keywords"
    with pytest.raises(ValueError):
        runtime_class(re.Pattern)


# --------------------------------------------------------------------- the guard


def test_finalize_accepts_only_pysource() -> None:
    ok = PySource("1")
    assert finalize(ok) is ok
    for bad in ["1", Sneaky("1"), 1, None, jinja2.Undefined()]:
        with pytest.raises(TypeError, match="py_\\* filter"):
            finalize(bad)

    class SubSource(PySource):
        pass

    with pytest.raises(TypeError):
        finalize(SubSource("1"))


@pytest.mark.parametrize(
    "template",
    ["{{ value }}", "x = {{ value }}", "{{ value|upper }}", "{{ value|string }}"],
)
def test_environment_rejects_unfiltered_values(template: str) -> None:
    env = _environment()
    for value in ["x", Sneaky("x"), 3]:
        with pytest.raises(TypeError):
            env.from_string(template).render(value=value)


def test_environment_accepts_filtered_values() -> None:
    env = _environment()
    out = env.from_string("x = {{ value|py_str }}").render(value="a'b")
    assert out == 'x = "a\'b"'


def test_environment_is_strict_about_undefined() -> None:
    env = _environment()
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{% if missing %}x{% endif %}").render()
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{% for x in missing.items %}{% endfor %}").render()
    with pytest.raises(TypeError):  # the filter refuses Undefined before it can print
        env.from_string("{{ missing|py_str }}").render()


# --------------------------------------------------------------------- layout


def _kw(line: int) -> Call:
    return Call(
        PySource("rt.Keywords"),
        (
            ("label", py_str("keywords x")),
            ("pattern", PySource("_P0001")),
            ("line", py_int(line)),
            ("column", py_int(1)),
        ),
    )


def test_layout_flat_when_it_fits() -> None:
    out = layout(_kw(1), 8, 15, 1)
    assert out == 'rt.Keywords(label="keywords x", pattern=_P0001, line=1, column=1)'


def test_layout_explodes_with_trailing_commas() -> None:
    out = layout(Call(PySource("rt.AnyOf"), (("items", Tup((_kw(1), _kw(2)))),)), 8, 15, 1)
    assert out == (
        "rt.AnyOf(\n"
        "            items=(\n"
        '                rt.Keywords(label="keywords x", pattern=_P0001, line=1, column=1),\n'
        '                rt.Keywords(label="keywords x", pattern=_P0001, line=2, column=1),\n'
        "            ),\n"
        "        )"
    )


def test_layout_forced_call_explodes_parents() -> None:
    forced = Call(PySource("f"), (("a", py_int(1)),), explode=True)
    assert layout(Tup((forced,)), 0, 0) == "(\n    f(\n        a=1,\n    ),\n)"


def test_layout_one_tuple_and_empty_tuple() -> None:
    assert layout(Tup((py_int(1),)), 0, 0) == "(1,)"
    assert layout(Tup(()), 0, 0) == "()"


def test_layout_rejects_plain_str_atoms() -> None:
    with pytest.raises(TypeError):
        layout(Tup(("1",)), 0, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("line", "overlong"),
    [
        ("x" * 100, False),
        ("x" * 101, False),  # one word: ruff does not report it
        ("    " + "x" * 120 + ",", False),
        ("a " + "x" * 100, True),
        ('    message="see https://example.com/' + "x" * 100 + '",', False),
        ('    message="' + "x " * 60 + 'https://example.com",', True),
    ],
)
def test_is_overlong_mirrors_ruff(line: str, overlong: bool) -> None:
    assert is_overlong(line) is overlong


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a.policy", '"a.policy"'),
        ("x # noqa", '"x \\x23 noqa"'),
        ("\\#", '"\\\\\\x23"'),
        ("#\n#", '"\\x23\\n\\x23"'),
    ],
)
def test_py_comment_has_no_hash_or_line_break(value: str, expected: str) -> None:
    out = py_comment(value)
    assert out == expected
    assert "#" not in out
    assert ast.literal_eval(out) == value


@given(st.text())
def test_py_comment_round_trips(value: str) -> None:
    out = py_comment(value)
    assert "#" not in out and "\n" not in out and out.isascii()
    assert ast.literal_eval(out) == value
