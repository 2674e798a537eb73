"""The formatter: goldens, idempotence, AST equality, comments kept, the CLI, random policies.

Goldens are pairs ``cases/<name>.policy`` -> ``cases/<name>.formatted.policy``;
``pytest --update-goldens`` rewrites the formatted side.
"""

from __future__ import annotations

import difflib
import os
import stat
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark import Token

from policylang import fmt, nodes
from policylang.builder import parse
from policylang.cli import main
from policylang.diagnostics import DiagnosticSink
from policylang.literals import decode_string
from policylang.parser import parse_tree
from policylang.source import SourceFile

HERE = Path(__file__).parent
CASES = HERE / "cases"
ROOT = HERE.parents[1]
INPUTS = sorted(p for p in CASES.glob("*.policy") if not p.name.endswith(".formatted.policy"))
POLICIES = sorted((ROOT / "policies").glob("*.policy"))
EVERYTHING = INPUTS + POLICIES


def ids(paths: Sequence[Path]) -> list[str]:
    return [p.relative_to(ROOT).as_posix() for p in paths]


def source_of(path: Path) -> SourceFile:
    source, decoding = SourceFile.from_bytes(path.name, path.read_bytes())
    assert not decoding
    return source


def format_text(text: str, path: str = "test.policy") -> str:
    sink = DiagnosticSink()
    out = fmt.format_source(SourceFile.from_text(path, text), sink)
    assert out is not None, [f"{d.code} {d.message} {d.notes}" for d in sink.sorted()]
    assert not sink.diagnostics
    return out


def ast_of(text: str) -> nodes.PolicyFile:
    sink = DiagnosticSink()
    tree = parse(SourceFile.from_text("ast.policy", text), sink)
    assert tree is not None and not sink.has_errors, sink.sorted()
    return tree


def comments_of(text: str) -> Counter[str]:
    comments: list[Token] = []
    sink = DiagnosticSink()
    assert parse_tree(SourceFile.from_text("c.policy", text), sink, comments=comments) is not None
    return Counter(str(c).rstrip() for c in comments)


def show_diff(expected: str, actual: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True), actual.splitlines(keepends=True), name, "formatted"
        )
    )


# ---------------------------------------------------------------- comments from the parser


def test_parse_tree_collects_comments_only_when_asked() -> None:
    text = '# head\nx y = "#not" # beside\n'
    comments: list[Token] = []
    sink = DiagnosticSink()
    assert parse_tree(SourceFile.from_text("c.policy", text), sink, comments=comments)
    assert [(str(c), c.start_pos, c.line) for c in comments] == [
        ("# head", 0, 1),
        ("# beside", 20, 2),
    ]
    assert parse_tree(SourceFile.from_text("c.policy", text), sink) is not None
    assert len(comments) == 2  # a later parse without the list does not add to it
    broken: list[Token] = []
    assert parse_tree(SourceFile.from_text("c.policy", "# a\nx y {"), sink, comments=broken) is None
    assert [str(c) for c in broken] == ["# a"]


# ---------------------------------------------------------------- goldens


def test_there_are_cases() -> None:
    names = {p.stem for p in INPUTS}
    assert {"layout", "lists", "conditions", "comments", "strings", "blocks", "crlf"} <= names


def test_crlf_case_really_has_crlf_line_ends() -> None:
    # Guards against a checkout normalizing the case (see cases/.gitattributes).
    assert b"\r\n" in (CASES / "crlf.policy").read_bytes()


@pytest.mark.parametrize("path", INPUTS, ids=ids(INPUTS))
def test_golden(path: Path, update_goldens: bool) -> None:
    actual = format_text(source_of(path).text, path.name)
    golden = path.with_name(f"{path.stem}.formatted.policy")
    if update_goldens or not golden.exists():
        golden.write_bytes(actual.encode("utf-8"))
        if not update_goldens:
            pytest.fail(f"wrote missing golden {golden.name}; review and commit it")
        return
    expected = golden.read_bytes().decode("utf-8")
    if actual != expected:
        pytest.fail(
            "formatted output differs (run pytest --update-goldens):\n"
            + show_diff(expected, actual, golden.name)
        )


@pytest.mark.parametrize("path", INPUTS, ids=ids(INPUTS))
def test_golden_is_canonical(path: Path) -> None:
    golden = path.with_name(f"{path.stem}.formatted.policy")
    text = golden.read_bytes().decode("utf-8")
    assert format_text(text) == text


# ---------------------------------------------------------------- properties of every file


@pytest.mark.parametrize("path", EVERYTHING, ids=ids(EVERYTHING))
def test_idempotent(path: Path) -> None:
    once = format_text(source_of(path).text)
    assert format_text(once) == once


@pytest.mark.parametrize("path", EVERYTHING, ids=ids(EVERYTHING))
def test_same_syntax_tree(path: Path) -> None:
    text = source_of(path).text
    assert ast_of(format_text(text)) == ast_of(text)


@pytest.mark.parametrize("path", EVERYTHING, ids=ids(EVERYTHING))
def test_every_comment_kept(path: Path) -> None:
    text = source_of(path).text
    assert comments_of(format_text(text)) == comments_of(text)


@pytest.mark.parametrize("path", EVERYTHING, ids=ids(EVERYTHING))
def test_output_shape(path: Path) -> None:
    out = format_text(source_of(path).text)
    assert out.endswith("\n") and not out.endswith("\n\n")
    assert "\t" not in out.replace('"a\\tb"', "")
    assert "\n\n\n" not in out
    for line in out.splitlines():
        assert line == line.rstrip()
        indent = len(line) - len(line.lstrip(" "))
        assert not line[indent:].startswith(" ")


@pytest.mark.parametrize("path", POLICIES, ids=ids(POLICIES))
def test_bundled_policies_are_formatted(path: Path) -> None:
    text = path.read_bytes().decode("utf-8")
    out = format_text(text)
    assert out == text, "run `policylang fmt policies/`:\n" + show_diff(text, out, path.name)


# ---------------------------------------------------------------- specific rules


def test_parentheses_are_kept_exactly() -> None:
    text = (
        "signal s {\n"
        "  detect: (a or b) or c\n"
        "  unless: ((a)) and (b and c)\n"
        "  follow_up: not (not a) or (a and b) or a and b\n"
        "}\n"
    )
    assert format_text(text) == text


def test_numbers_and_regexes_as_written() -> None:
    text = (
        'x y {\n  a: [0.90, 007, 1.0]\n  b: pattern /a\\/b #c\\d/ims\n  c: score "k" >= 0.80\n}\n'
    )
    assert format_text(text) == text


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        (r'"\u{41}\u{1F600}"', '"A\U0001f600"'),
        (r'"\u{a}"', r'"\n"'),
        (r'"\u{9}x"', r'"\tx"'),
        (r'"\u{0}\u{1b}\u{7f}\u{85}"', r'"\u{0}\u{1B}\u{7F}\u{85}"'),
        ('"\u200b\u202e\u2028\u00a0"', r'"\u{200B}\u{202E}\u{2028}\u{A0}"'),
        ('"a\tb"', r'"a\tb"'),
        (r'"\"\\"', r'"\"\\"'),
        ('"café"', '"café"'),
    ],
)
def test_string_escapes(written: str, canonical: str) -> None:
    assert format_text(f"x y = {written}\n") == f"x y = {canonical}\n"


@given(st.text())
def test_canonical_string_round_trips(value: str) -> None:
    token = fmt.canonical_string(value)
    decoded = decode_string(token)
    assert decoded.problems == ()
    assert decoded.value == value
    assert "\n" not in token and "\r" not in token


def test_empty_and_comment_only_files() -> None:
    assert format_text("") == ""
    assert format_text("\n\n  \n") == ""
    assert format_text("  # only a comment   \n\n\n# and another") == (
        "# only a comment\n\n# and another\n"
    )


def test_a_chain_written_on_one_line_stays_on_one_line_when_it_fits() -> None:
    assert format_text("r x {\n  when: a or\n b\n}\n") == "r x {\n  when: a\n     or b\n}\n"
    assert format_text("r x {\n  when: a or b\n}\n") == "r x {\n  when: a or b\n}\n"


def test_suppression_comment_stays_on_the_declaration_line() -> None:
    items = ", ".join(f'"word{i}"' for i in range(20))
    out = format_text(f"list spare = [{items}]  # policylang: allow(PL401)\n")
    assert out.splitlines()[0] == "list spare = [  # policylang: allow(PL401)"


def test_syntax_error_is_not_formatted() -> None:
    sink = DiagnosticSink()
    assert fmt.format_source(SourceFile.from_text("bad.policy", "policy x {"), sink) is None
    assert [d.code for d in sink.sorted()] == ["PL103"]


def test_invalid_escape_is_not_formatted() -> None:
    sink = DiagnosticSink()
    assert fmt.format_source(SourceFile.from_text("bad.policy", 'x y = "\\q"'), sink) is None
    assert [d.code for d in sink.sorted()] == ["PL105"]


def test_a_layout_bug_is_an_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fmt._Layout, "render", lambda self: "x y = 2\n")
    sink = DiagnosticSink()
    assert fmt.format_source(SourceFile.from_text("a.policy", "x y = 1\n"), sink) is None
    (diagnostic,) = sink.sorted()
    assert diagnostic.code == "PL900"
    assert diagnostic.notes == ("the output's syntax tree differs from the input's",)


@pytest.mark.parametrize(
    ("output", "note"),
    [
        ("x y = (1)\n", "the output's tokens differ from the input's"),
        ("x y = 1\n", "the output's comments differ from the input's"),
        ("x y = \n", "the output does not parse: unexpected end of file"),
    ],
)
def test_every_verification_is_checked(
    monkeypatch: pytest.MonkeyPatch, output: str, note: str
) -> None:
    monkeypatch.setattr(fmt._Layout, "render", lambda self: output)
    sink = DiagnosticSink()
    assert fmt.format_source(SourceFile.from_text("a.policy", "x y = 1 # c\n"), sink) is None
    assert [d.notes for d in sink.sorted()] == [(note,)]


def test_an_exception_in_the_layout_is_an_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: object) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(fmt._Layout, "render", boom)
    sink = DiagnosticSink()
    assert fmt.format_source(SourceFile.from_text("a.policy", "x y = 1\n"), sink) is None
    assert [(d.code, d.notes) for d in sink.sorted()] == [("PL900", ("RuntimeError: boom",))]


# ---------------------------------------------------------------- the command


def run(args: Sequence[str | os.PathLike[str]], *, input: bytes | None = None) -> Result:
    result = CliRunner().invoke(main, ["fmt", *map(str, args)], input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


MESSY = b'policy p {version: "1"   owner:"o"}\nlist l=["a",\n"b"]  # c\n'
TIDY = b'policy p {\n  version: "1"\n  owner: "o"\n}\n\nlist l = ["a", "b"]  # c\n'


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    path = tmp_path / "messy.policy"
    path.write_bytes(MESSY)
    return path


def test_cli_formats_in_place(messy: Path) -> None:
    os.chmod(messy, 0o640)
    result = run([messy])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == f"reformatted {messy}\n"
    assert messy.read_bytes() == TIDY
    assert stat.S_IMODE(messy.stat().st_mode) == 0o640
    assert not [p for p in messy.parent.iterdir() if p.name.endswith(".tmp")]
    again = run([messy])
    assert (again.exit_code, again.stdout, again.stderr) == (0, "", "")


def test_cli_formats_through_a_symbolic_link(messy: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.policy"
    link.symlink_to(messy)
    result = run([link])
    assert result.exit_code == 0
    assert link.is_symlink()
    assert messy.read_bytes() == TIDY


def test_cli_check_lists_files_and_writes_nothing(messy: Path, tmp_path: Path) -> None:
    tidy = tmp_path / "tidy.policy"
    tidy.write_bytes(TIDY)
    result = run(["--check", tmp_path])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"would reformat {messy}\n"
    assert messy.read_bytes() == MESSY
    clean = run(["--check", tidy])
    assert (clean.exit_code, clean.stdout, clean.stderr) == (0, "", "")


def test_cli_diff_prints_a_unified_diff_and_writes_nothing(messy: Path) -> None:
    result = run(["--diff", messy])
    assert result.exit_code == 1
    assert result.stdout.startswith(f"--- {messy}\n+++ {messy}\n@@ ")
    assert '-list l=["a",\n' in result.stdout
    assert '+list l = ["a", "b"]  # c\n' in result.stdout
    assert result.stderr == ""
    assert messy.read_bytes() == MESSY


def test_cli_check_and_diff_together(messy: Path) -> None:
    result = run(["--check", "--diff", messy])
    assert result.exit_code == 1
    assert result.stdout.startswith("--- ")
    assert result.stderr == f"would reformat {messy}\n"
    assert messy.read_bytes() == MESSY


def test_cli_stdin_to_stdout() -> None:
    result = run(["-"], input=MESSY)
    assert result.exit_code == 0
    assert result.stdout_bytes == TIDY
    assert result.stderr == ""
    tidy = run(["-"], input=TIDY)
    assert (tidy.exit_code, tidy.stdout_bytes) == (0, TIDY)


def test_cli_stdin_check_and_diff() -> None:
    check = run(["--check", "-"], input=MESSY)
    assert (check.exit_code, check.stdout, check.stderr) == (1, "", "would reformat <stdin>\n")
    diff = run(["--diff", "-"], input=MESSY)
    assert diff.exit_code == 1
    assert diff.stdout.startswith("--- <stdin>\n+++ <stdin>\n")
    clean = run(["--check", "-"], input=TIDY)
    assert (clean.exit_code, clean.stdout, clean.stderr) == (0, "", "")


def test_cli_syntax_error_exits_1_and_leaves_the_file(tmp_path: Path, messy: Path) -> None:
    bad = tmp_path / "bad.policy"
    bad.write_bytes(b'policy p {\n  version: "1"\n')
    result = run([tmp_path])
    assert result.exit_code == 1
    assert "error[PL103]: unexpected end of file" in result.stderr
    assert f"--> {bad}:3:1" in result.stderr
    assert bad.read_bytes() == b'policy p {\n  version: "1"\n'
    assert messy.read_bytes() == TIDY  # the other file is still formatted


def test_cli_syntax_error_on_stdin_prints_nothing_on_stdout() -> None:
    result = run(["-"], input=b"policy p {")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "--> <stdin>:1:11" in result.stderr


def test_cli_invalid_utf8_is_not_formatted(tmp_path: Path) -> None:
    bad = tmp_path / "bad.policy"
    bad.write_bytes(b'x y = "\xff"\n')
    result = run([bad])
    assert result.exit_code == 1
    assert "PL001" in result.stderr
    assert bad.read_bytes() == b'x y = "\xff"\n'


def test_cli_crlf_and_bom_are_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "w.policy"
    path.write_bytes(b"\xef\xbb\xbfx y = 1\r\nx z = 2\r\n")
    check = run(["--check", path])
    assert check.exit_code == 1
    result = run([path])
    assert result.exit_code == 0
    assert path.read_bytes() == b"x y = 1\n\nx z = 2\n"


def test_cli_internal_error_exits_3_and_writes_nothing(
    messy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fmt._Layout, "render", lambda self: "garbage = \n")
    result = run([messy])
    assert result.exit_code == 3
    assert "PL900" in result.stderr
    assert messy.read_bytes() == MESSY


@pytest.mark.parametrize(
    "args",
    [["does-not-exist.policy"], [], ["--frobnicate", "x.policy"]],
    ids=["missing", "no-paths", "unknown-option"],
)
def test_cli_usage_errors(args: list[str]) -> None:
    assert run(args).exit_code == 2


def test_cli_directory_without_policies_is_a_usage_error(tmp_path: Path) -> None:
    result = run([tmp_path])
    assert result.exit_code == 2
    assert "no `.policy` files found" in result.stderr


def test_cli_unwritable_file_is_an_io_error(messy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: str, text: str) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("policylang.cli.fmt.write_atomic", refuse)
    result = run([messy])
    assert result.exit_code == 2
    assert result.stderr == f"error: cannot write `{messy}`: Permission denied\n"
    assert messy.read_bytes() == MESSY


def test_cli_bundled_policies_are_formatted() -> None:
    result = run(["--check", ROOT / "policies"])
    assert (result.exit_code, result.stderr) == (0, "")


def test_cli_help_lists_fmt() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert "fmt" in result.stdout


# ---------------------------------------------------------------- random policies
#
# A small generator of valid policies, written out with random layout: any
# whitespace, blank lines, tabs, full-line and trailing comments between any two
# tokens. Formatting must keep the syntax tree and the comments and be idempotent.

RESERVED = {
    "and", "or", "not", "any", "all", "keywords", "pattern", "score", "annotation", "in",
    "within", "after", "benign", "turn", "turns",
}  # fmt: skip
NAMES = st.one_of(
    st.sampled_from(["a", "b", "csam", "x_1", "end-on-request", "_p", "anything", "order",
                     "notable", "turnstile", "inner", "Z9"]),
    st.from_regex(r"[a-z_][a-z0-9_\-]{0,10}", fullmatch=True),
).filter(lambda name: name not in RESERVED)  # fmt: skip
NUMBERS = st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3})?", fullmatch=True)
REGEXES = st.sampled_from(
    [r"/a/", r"/a\/b/i", r"/\bx+\b/", r"/[a-z]+ #no/", r"/(a|b)\s*\d{2,}/ms", r"/\//"]
)
COMPARATORS = st.sampled_from([">=", "<=", "==", "!=", ">", "<"])


@st.composite
def strings(draw: st.DrawFn) -> str:
    """A STRING token for arbitrary text, each character written raw or escaped."""
    out = ['"']
    for char in draw(st.text(max_size=12)):
        if char in '"\\' or char == "\n" or char == "\r" or draw(st.booleans()):
            if char in '"\\':
                out.append("\\" + char)
            elif char == "\n" and draw(st.booleans()):
                out.append("\\n")
            else:
                digits = f"{ord(char):x}"
                digits = digits.zfill(draw(st.integers(len(digits), 6)))
                out.append("\\u{" + (digits.upper() if draw(st.booleans()) else digits) + "}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


Tokens = list[str]


def one(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[Tokens]:
    return strategy.map(lambda token: [token])


def sequence(*parts: st.SearchStrategy[Tokens]) -> st.SearchStrategy[Tokens]:
    return st.tuples(*parts).map(lambda groups: [t for group in groups for t in group])


def fixed(*tokens: str) -> st.SearchStrategy[Tokens]:
    return st.just(list(tokens))


def optional(strategy: st.SearchStrategy[Tokens]) -> st.SearchStrategy[Tokens]:
    return st.one_of(st.just([]), strategy)


def separated(
    item: st.SearchStrategy[Tokens], minimum: int, opening: str, closing: str
) -> st.SearchStrategy[Tokens]:
    def join(items: list[Tokens], trailing: bool) -> Tokens:
        out = [opening]
        for index, tokens in enumerate(items):
            out += ([","] if index else []) + tokens
        return out + ([","] if trailing and items else []) + [closing]

    return st.builds(join, st.lists(item, min_size=minimum, max_size=6), st.booleans())


def list_of(item: st.SearchStrategy[Tokens]) -> st.SearchStrategy[Tokens]:
    return separated(item, 0, "[", "]")


STRING = one(strings())
ATOMS: st.SearchStrategy[Tokens] = st.one_of(
    STRING,
    one(NUMBERS),
    one(REGEXES),
    one(NAMES),
    sequence(fixed("keywords"), st.one_of(one(NAMES), STRING, list_of(STRING))),
    sequence(fixed("pattern"), st.one_of(one(NAMES), one(REGEXES))),
    sequence(fixed("score"), STRING, one(COMPARATORS), one(NUMBERS)),
    sequence(fixed("annotation"), STRING),
    sequence(
        one(NAMES),
        optional(sequence(fixed("["), one(NAMES), fixed("]"))),
        one(COMPARATORS),
        st.one_of(one(NUMBERS), one(NAMES)),
        optional(sequence(fixed("within"), one(NUMBERS), one(st.sampled_from(["turn", "turns"])))),
    ),
    sequence(one(NAMES), fixed("in"), list_of(one(NAMES))),
    sequence(
        fixed("after"), one(NUMBERS), fixed("benign"), one(st.sampled_from(["turns", "turn"]))
    ),
    sequence(one(NUMBERS), one(st.sampled_from(["turns", "turn"]))),
)


def _compound(inner: st.SearchStrategy[Tokens]) -> st.SearchStrategy[Tokens]:
    return st.one_of(
        sequence(inner, fixed("or"), inner),
        sequence(inner, fixed("and"), inner),
        sequence(fixed("not"), inner),
        sequence(fixed("("), inner, fixed(")")),
        sequence(one(st.sampled_from(["any", "all"])), separated(inner, 1, "(", ")")),
        list_of(inner),
        block(inner),
    )


def block(value: st.SearchStrategy[Tokens]) -> st.SearchStrategy[Tokens]:
    prop = sequence(one(NAMES), fixed(":"), value)
    return st.lists(prop, max_size=4).map(lambda props: ["{", *(t for p in props for t in p), "}"])


VALUES = st.recursive(ATOMS, _compound, max_leaves=10)
DECLARATIONS = st.one_of(
    sequence(one(NAMES), one(NAMES), block(VALUES)),
    sequence(one(NAMES), one(NAMES), fixed("="), VALUES),
)
COMMENT_TEXT = st.sampled_from(
    ["#", "# c", "#x", "#  spaced out", "# policylang: allow(PL401)", "# é ✓", "## #"]
)
SEPARATORS = st.one_of(
    st.sampled_from([" ", " ", " ", "\n", "\n\n", "\n\n\n", "\t", "  \n  ", " \t\n\t "]),
    COMMENT_TEXT.map(lambda text: f" {text}\n"),
    COMMENT_TEXT.map(lambda text: f"\n  {text}\n"),
    COMMENT_TEXT.map(lambda text: f"\n\n{text}\n\n"),
)


@st.composite
def policies(draw: st.DrawFn) -> str:
    tokens = [t for declaration in draw(st.lists(DECLARATIONS, max_size=4)) for t in declaration]
    parts = [draw(st.sampled_from(["", "\n", "# head\n", "# head\n\n"]))]
    for index, token in enumerate(tokens):
        if index:
            parts.append(draw(SEPARATORS))
        parts.append(token)
    parts.append(draw(st.sampled_from(["", "\n", " # tail", "\n# end\n"])))
    return "".join(parts)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(policies())
def test_random_policies(text: str) -> None:
    once = format_text(text)
    assert ast_of(once) == ast_of(text)
    assert comments_of(once) == comments_of(text)
    assert format_text(once) == once
