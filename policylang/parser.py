"""Parsing policy text into a lark tree; lark's exceptions become syntax diagnostics.

The grammar is loaded and the LALR parser built once, lazily. :func:`parse_tree` reports
only the first syntax error of a file (PL101-PL104), refined through the curated table in
:mod:`policylang.syntax_errors`, and never lets a lark exception escape.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import os
import sys
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import lark
from lark import Lark, Token, Tree
from lark.exceptions import (
    LarkError,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)

from policylang.diagnostics import Applicability, DiagnosticSink, Label, Suggestion
from policylang.source import SourceFile, Span
from policylang.suggest import did_you_mean
from policylang.syntax_errors import (
    CURATED,
    KEYWORDS,
    CuratedError,
    describe_character,
    describe_expected,
    describe_token,
)

__all__ = ["build_parser", "get_parser", "grammar_text", "parse_tree"]

#: Where an installed wheel keeps the grammar (hatch force-include), inside the package.
PACKAGED_GRAMMAR = ("_grammar", "policylang.lark")
#: The grammar in a source checkout or editable install.
REPOSITORY_GRAMMAR = Path(__file__).resolve().parent.parent / "grammars" / "policylang.lark"

_OPENERS = {"LBRACE": "RBRACE", "LBRACKET": "RBRACKET", "LPAREN": "RPAREN"}
_CLOSERS = frozenset(_OPENERS.values())
# Keywords that take an argument: a name just before an error that is close to one of
# these is probably a misspelt keyword (`keyword "x"` for `keywords "x"`).
_PREFIX_KEYWORDS = ("keywords", "pattern", "score", "annotation", "not", "any", "all")

# Where the lexer callback puts the COMMENT tokens of the parse in progress, if anyone
# asked for them (see :func:`parse_tree`). A context variable keeps concurrent parses
# (threads, tasks) from seeing each other's comments through the one shared parser.
_COMMENT_SINK: ContextVar[list[Token] | None] = ContextVar("_COMMENT_SINK", default=None)


def _collect_comment(token: Token) -> Token:
    """Lexer callback for COMMENT, which the grammar ignores: record it if asked to."""
    comments = _COMMENT_SINK.get()
    if comments is not None:
        comments.append(token)
    return token


def _read_grammar(candidates: Iterable[Traversable]) -> str:
    """Return the text of the first candidate grammar file that exists."""
    tried: list[str] = []
    for candidate in candidates:
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
        tried.append(str(candidate))
    raise FileNotFoundError("policylang grammar not found; tried: " + ", ".join(tried))


@functools.cache
def grammar_text() -> str:
    """Return the grammar source: the packaged copy if installed, else the repository's."""
    packaged = importlib.resources.files("policylang").joinpath(*PACKAGED_GRAMMAR)
    return _read_grammar((packaged, REPOSITORY_GRAMMAR))


def build_parser(*, strict: bool = False, cache: str | None = None) -> Lark:
    """Build a fresh LALR parser for the grammar (see :func:`get_parser` for the shared one).

    ``strict=True`` makes lark reject terminal collisions; it needs ``interegular``,
    a development dependency, so only tests use it. ``cache`` is a file where lark
    keeps the analysed grammar between runs (it checks the file is for this grammar,
    lark and Python, and rebuilds it when not).
    """
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        strict=strict,
        # Ignored terminals still reach lexer callbacks: how the formatter sees comments.
        lexer_callbacks={"COMMENT": _collect_comment},
        cache=cache or False,
    )


@functools.cache
def get_parser() -> Lark:
    """Return the shared parser, built on first use (from the cache when there is one)."""
    return build_parser(cache=parser_cache_path())


def parser_cache_path() -> str | None:
    """Where the analysed grammar is kept between runs, or ``None`` for nowhere.

    Building the parser is most of the start-up of a command; loading it takes
    milliseconds. The file is kept in policylang's private cache directory
    (:mod:`policylang.cache`), under a key of the grammar, lark and Python versions.
    """
    from policylang.cache import cache_directory

    directory = cache_directory()
    if directory is None:
        return None
    key = "\0".join((grammar_text(), lark.__version__, sys.version))
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]
    return os.path.join(directory, f"grammar-{digest}.lark")


def parse_tree(
    source: SourceFile, sink: DiagnosticSink, *, comments: list[Token] | None = None
) -> Tree[Token] | None:
    """Parse ``source`` into a lark tree, or report its first syntax error and return None.

    Comments are not part of the tree. Pass a list as ``comments`` to receive the
    file's COMMENT tokens (with positions), in source order; after a syntax error it
    holds only those lexed before the error.
    """
    try:
        parser = get_parser()
        reset = None if comments is None else _COMMENT_SINK.set(comments)
        try:
            return parser.parse(source.text)
        finally:  # before error reporting, which parses curated examples
            if reset is not None:
                _COMMENT_SINK.reset(reset)
    except UnexpectedInput as error:
        _report(source, sink, error)
    except LarkError as error:  # a grammar or configuration bug, never the user's fault
        sink.error(
            "PL900",
            f"internal error while parsing: {type(error).__name__}",
            source.path,
            Span.empty(0),
            help="this is a bug in policylang; please report it with the file that caused it",
            notes=(str(error).splitlines()[0] if str(error) else type(error).__name__,),
        )
    return None


# ---------------------------------------------------------------- error reporting


@dataclass(frozen=True, slots=True)
class _Report:
    code: str
    message: str
    span: Span
    label: str = ""
    help: str | None = None
    secondary: tuple[Label, ...] = ()
    suggestions: tuple[Suggestion, ...] = ()


def _report(source: SourceFile, sink: DiagnosticSink, error: UnexpectedInput) -> None:
    try:
        report = _describe(source, error)
    except Exception:  # reporting must not fail; fall back to the plainest description
        report = _plain(source, error)
    sink.error(
        report.code,
        report.message,
        source.path,
        report.span,
        label=report.label,
        help=report.help,
        secondary=report.secondary,
        suggestions=report.suggestions,
    )


def _plain(source: SourceFile, error: UnexpectedInput) -> _Report:
    if isinstance(error, UnexpectedCharacters):
        pos = _clamp(source, error.pos_in_stream)
        char = source.text[pos : pos + 1]
        shown = describe_character(char) if char else "end of file"
        return _Report("PL102", f"unexpected character {shown}", Span(pos, pos + len(char)))
    if isinstance(error, UnexpectedToken) and error.token.type != "$END":
        token = error.token
        start = _clamp(source, token.start_pos)
        end = max(start, _clamp(source, token.end_pos))
        return _Report("PL101", f"unexpected {describe_token(token.type, token)}", Span(start, end))
    return _Report("PL103", "unexpected end of file", source.end_span())


def _describe(source: SourceFile, error: UnexpectedInput) -> _Report:
    if isinstance(error, UnexpectedEOF) or (
        isinstance(error, UnexpectedToken) and error.token.type == "$END"
    ):
        return _describe_eof(source, error)
    if isinstance(error, UnexpectedCharacters):
        return _describe_character(source, error)
    if isinstance(error, UnexpectedToken):
        return _describe_token(source, error)
    return _plain(source, error)


def _describe_eof(source: SourceFile, error: UnexpectedInput) -> _Report:
    expected = _accepts(error)
    secondary: tuple[Label, ...] = ()
    opener = _unclosed_opener(error)
    if opener is not None:
        secondary = (Label(_token_span(source, opener), f"this `{opener}` is not closed"),)
    return _Report(
        "PL103",
        "unexpected end of file",
        source.end_span(),
        label="file ends here",
        help=describe_expected(expected) if expected else None,
        secondary=secondary,
    )


def _describe_character(source: SourceFile, error: UnexpectedCharacters) -> _Report:
    text = source.text
    pos = _clamp(source, error.pos_in_stream)
    char = text[pos : pos + 1]
    if char == '"' and not _closes_on_line(text, pos + 1):
        line_end = text.find("\n", pos)
        end = len(text) if line_end == -1 else line_end
        return _Report(
            "PL104",
            "unterminated string",
            Span(pos, end),
            label="string starts here",
            help='add the closing `"`; a string ends on the line it starts '
            "(write `\\n` for a line break)",
        )
    span = Span(pos, pos + len(char))
    curated = _match_curated(source, error)
    if curated is not None:
        if curated.at:  # underline the whole lexeme, such as `//`
            span = Span(pos, min(len(text), pos + len(curated.at)))
        return _Report(curated.code, curated.message, span, help=curated.help)
    expected = _accepts(error)
    return _Report(
        "PL102",
        f"unexpected character {describe_character(char)}",
        span,
        help=describe_expected(expected) if expected else None,
    )


def _describe_token(source: SourceFile, error: UnexpectedToken) -> _Report:
    token = error.token
    span = _token_span(source, token)
    expected = _accepts(error)
    unexpected = f"unexpected {describe_token(token.type, token)}"

    # A misspelt keyword exactly where one is expected: `after 3 bening turns`.
    if token.type == "NAME":
        keywords = [KEYWORDS[t] for t in expected if t in KEYWORDS]
        guess = did_you_mean(str(token), keywords)
        if guess is not None:
            return _Report(
                "PL101",
                unexpected,
                span,
                help=f"did you mean `{guess}`?",
                suggestions=(_suggest(span, guess),),
            )

    missing_brace = _missing_close_brace(source, error)
    if missing_brace is not None:
        return missing_brace

    curated = _match_curated(source, error)
    if curated is not None:
        return _Report(curated.code, curated.message, span, help=curated.help)

    # A misspelt prefix keyword just before the error: `detect: keyword "x"`.
    previous = _previous_token(error)
    if previous is not None and previous.type == "NAME":
        guess = did_you_mean(str(previous), _PREFIX_KEYWORDS)
        if guess is not None:
            previous_span = _token_span(source, previous)
            return _Report(
                "PL101",
                unexpected,
                span,
                help=f"did you mean `{guess}` instead of `{previous}`?",
                secondary=(Label(previous_span, "maybe a misspelt keyword"),),
                suggestions=(_suggest(previous_span, guess),),
            )

    return _Report(
        "PL101",
        unexpected,
        span,
        help=describe_expected(expected) if expected else None,
    )


def _missing_close_brace(source: SourceFile, error: UnexpectedToken) -> _Report | None:
    """Recognise `KIND NAME {` or `KIND NAME =` inside an unclosed block.

    The parser reads the kind as a property key and fails at the name, which would
    otherwise be reported as a missing `:`.
    """
    if error.token.type != "NAME" or _accepts(error) != {"COLON"}:
        return None
    previous = _previous_token(error)
    if previous is None or previous.type != "NAME":
        return None
    end = _clamp(source, error.token.end_pos)
    if source.text[end:].lstrip()[:1] not in ("{", "="):
        return None
    opener = _unclosed_opener(error)
    if opener is None or opener.type != "LBRACE":
        return None
    return _Report(
        "PL101",
        "expected `}` before the next declaration",
        _token_span(source, previous),
        label="a new declaration starts here",
        help="add `}` to close the block",
        secondary=(Label(_token_span(source, opener), "this `{` is not closed"),),
    )


def _suggest(span: Span, replacement: str) -> Suggestion:
    return Suggestion(
        span, replacement, f"replace with `{replacement}`", Applicability.MAYBE_INCORRECT
    )


# ---------------------------------------------------------------- curated examples


def _state_key(error: UnexpectedInput) -> None:
    """Replace ``error.state`` by an int key: the LR state, ignoring the stack depth.

    lark's ``match_examples`` compares states by stack depth and LR state, so a curated
    example would only match errors at the same nesting depth. The LR state plus the
    set of acceptable tokens (which match_examples also compares) is what decides
    which message fits. The key's low bit keeps lexical and token errors apart; it must
    be an int because lark formats it with ``%d`` in a debug message.
    """
    position = getattr(error.state, "position", None)
    if isinstance(position, int):
        error.state = position * 2 + isinstance(error, UnexpectedCharacters)


def _parse_example(text: str) -> Tree[Token]:
    try:
        return get_parser().parse(text)
    except UnexpectedInput as example_error:
        _state_key(example_error)
        raise


def _match_curated(source: SourceFile, error: UnexpectedInput) -> CuratedError | None:
    """Return the curated entry whose examples fail like ``error``, if any."""
    pos = _clamp(source, error.pos_in_stream)
    rest = source.text[pos:]
    token_type = error.token.type if isinstance(error, UnexpectedToken) else None
    candidates = [
        entry
        for entry in CURATED
        if (entry.at is None or rest.startswith(entry.at))
        and (entry.tokens is None or token_type in entry.tokens)
    ]
    if not candidates:
        return None
    _state_key(error)
    index = error.match_examples(
        _parse_example,
        [(i, entry.examples) for i, entry in enumerate(candidates)],
        token_type_match_fallback=True,
    )
    if index is not None:
        return candidates[index]
    if isinstance(error, UnexpectedCharacters):
        # Lexical entries describe the text itself, whatever the parser state.
        for entry in candidates:
            if entry.anywhere:
                return entry
    return None


# ---------------------------------------------------------------- parser-state helpers


def _interactive(error: UnexpectedInput) -> Any:
    return getattr(error, "interactive_parser", None)


def _accepts(error: UnexpectedInput) -> set[str]:
    """Terminals the parser could take at the error, computed exactly when possible."""
    interactive = _interactive(error)
    if interactive is not None:
        try:
            return set(interactive.accepts())
        except LarkError:
            pass
    if isinstance(error, UnexpectedToken):
        return set(error.expected)
    if isinstance(error, UnexpectedCharacters):
        return set(error.allowed or ())
    if isinstance(error, UnexpectedEOF):
        return {str(t) for t in error.expected}
    return set()


def _value_stack(error: UnexpectedInput) -> Sequence[object]:
    interactive = _interactive(error)
    state = getattr(interactive, "parser_state", None)
    stack = getattr(state, "value_stack", None)
    return stack if isinstance(stack, list) else ()


def _previous_token(error: UnexpectedInput) -> Token | None:
    """The last token the parser accepted before the error."""
    stack = _value_stack(error)
    if not stack:
        return None
    top = stack[-1]
    if isinstance(top, Token):
        return top
    if isinstance(top, Tree):
        tokens = [t for t in top.scan_values(lambda v: isinstance(v, Token))]
        return tokens[-1] if tokens else None
    return None


def _unclosed_opener(error: UnexpectedInput) -> Token | None:
    """The innermost `{`, `[` or `(` still open at the error, found on the parse stack.

    Completed constructs are reduced to trees, so bare bracket tokens on the stack
    are the ones whose construct is unfinished; a closer not yet reduced cancels the
    nearest opener below it.
    """
    pending_closers = 0
    for item in reversed(_value_stack(error)):
        if not isinstance(item, Token):
            continue
        if item.type in _CLOSERS:
            pending_closers += 1
        elif item.type in _OPENERS:
            if pending_closers:
                pending_closers -= 1
            else:
                return item
    return None


def _closes_on_line(text: str, start: int) -> bool:
    """Whether an unescaped `"` follows ``start`` on the same line."""
    i = start
    while i < len(text) and text[i] != "\n":
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return True
        i += 1
    return False


def _clamp(source: SourceFile, pos: int | None) -> int:
    if pos is None or pos < 0:
        return len(source.text)
    return min(pos, len(source.text))


def _token_span(source: SourceFile, token: Token) -> Span:
    start = _clamp(source, token.start_pos)
    end = max(start, _clamp(source, token.end_pos))
    return Span(start, end)
