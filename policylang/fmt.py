"""Comment-preserving formatter: lays policy text out in the one canonical style.

:func:`format_source` parses a file with its comments, turns the parse tree (which, unlike
the AST, still has every token and parenthesis as written) into a layout document, and
prints that at :data:`WIDTH` columns with a small Wadler/Prettier-style printer. Before it
returns, it parses its own output and checks that the AST, the token stream and the
comments are unchanged; a mismatch is a PL900 internal error and no text is returned.
The layout rules are documented in docs/cli.md (``## fmt``).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

from lark import Token, Tree

from policylang.builder import build
from policylang.diagnostics import DiagnosticSink
from policylang.literals import decode_string
from policylang.parser import parse_tree
from policylang.source import SourceFile, Span

__all__ = ["INDENT", "WIDTH", "canonical_string", "format_source"]

#: Lines are filled up to this many columns (code points); longer tokens stay whole.
WIDTH: Final = 100
#: Spaces per nesting level.
INDENT: Final = 2

_HELP_BUG = "this is a bug in policylang; please report it with the file that caused it"


def format_source(source: SourceFile, sink: DiagnosticSink) -> str | None:
    """Return ``source`` in canonical layout, or None after reporting why not to ``sink``.

    A file with syntax errors (PL1xx, reported as the parser and builder report them)
    is not formatted. The output is parsed again before it is returned: if its AST,
    tokens (strings compared by value) or comments differ from the input's, PL900 is
    reported and None returned, so a formatter bug can never change a policy.
    """
    comments: list[Token] = []
    tree = parse_tree(source, sink, comments=comments)
    if tree is None:
        return None
    check = DiagnosticSink()
    ast = build(tree, source, check)
    sink.extend(check.diagnostics)
    if ast is None or check.has_errors:
        return None
    try:
        text = _Layout(source.text, tree, comments).render()
        problem = _verify(source, tree, comments, ast, text)
    except Exception as bug:  # a formatter bug must become a diagnostic, not a traceback
        problem = f"{type(bug).__name__}: {bug}" if str(bug) else type(bug).__name__
    if problem is not None:
        sink.error(
            "PL900",
            "internal error while formatting: the output would not be the same policy",
            source.path,
            Span.empty(0),
            help=_HELP_BUG,
            notes=(problem,),
        )
        return None
    return text


# ================================================================ strings


def _needs_escape(char: str) -> bool:
    # Control, format (zero-width, bidi) and separator characters other than the
    # space: invisible or misleading in an editor, so they are written as escapes.
    category = unicodedata.category(char)
    return category in ("Cc", "Cf", "Zl", "Zp") or (category == "Zs" and char != " ")


def canonical_string(value: str) -> str:
    """Write a decoded string value as a STRING token in canonical form.

    ``"`` and ``\\`` are escaped, a line break and a tab become ``\\n`` and ``\\t``, other
    control, format (zero-width, bidirectional) and non-space separator characters
    become ``\\u{X}`` (upper-case hex); everything else is written as itself.
    """
    out = ['"']
    for char in value:
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif _needs_escape(char):
            out.append(f"\\u{{{ord(char):X}}}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _token_text(token: Token) -> str:
    """A token as the formatter writes it: strings re-encoded, all else as written."""
    if token.type == "STRING":
        return canonical_string(decode_string(str(token)).value)
    return str(token)


# ================================================================ layout documents
#
# A document is text, a tuple of documents (concatenation) or one of the nodes below.
# The printer decides, group by group, whether a group fits flat on the rest of the
# line; a group that holds a hard line break or a comment is always broken.


@dataclass(frozen=True, slots=True)
class _Line:
    """A line break; in a flat group, a space. A ``hard`` one always breaks."""

    hard: bool = False


@dataclass(frozen=True, slots=True)
class _BreakParent:
    """Forces every enclosing group to break."""


@dataclass(frozen=True, slots=True)
class _Group:
    """Printed flat if it fits in the rest of the line and nothing forces it to break."""

    contents: Doc
    force: bool = False


@dataclass(frozen=True, slots=True)
class _Indent:
    """Line breaks inside start ``by`` columns further right (left when negative)."""

    by: int
    contents: Doc


@dataclass(frozen=True, slots=True)
class _Align:
    """Line breaks inside start at the column where this node starts."""

    contents: Doc


@dataclass(frozen=True, slots=True)
class _IfBreak:
    """``broken`` when the enclosing group breaks, else ``flat``."""

    broken: Doc
    flat: Doc


@dataclass(frozen=True, slots=True)
class _Comment:
    """A comment at the end of the current output line.

    ``lazy`` comments trail the text just printed: anything printed after them on the
    same line first moves to a new line. Other comments wait for the next line break
    (they trail a construct's first line while the rest of that line is printed).
    """

    text: str
    lazy: bool


@dataclass(frozen=True, slots=True)
class _FillItem:
    above: Doc  # comment lines above the item (then it starts a line)
    body: Doc  # the item, its comma and a comment beside it
    blank: bool = False  # a blank line before it, as the author had

    @property
    def doc(self) -> Doc:
        return (self.above, self.body)


@dataclass(frozen=True, slots=True)
class _Fill:
    """Items packed onto lines: each goes on the current line if it fits, else the next."""

    items: tuple[_FillItem, ...]


@dataclass(frozen=True, slots=True)
class _FillStep:
    """Printer bookkeeping: the next item of a fill to place."""

    fill: _Fill
    index: int


Doc: TypeAlias = (
    str
    | tuple["Doc", ...]
    | _Line
    | _BreakParent
    | _Group
    | _Indent
    | _Align
    | _IfBreak
    | _Comment
    | _Fill
    | _FillStep
)

_HARD: Final[Doc] = (_BreakParent(), _Line(hard=True))
_LINE: Final = _Line()

_BREAK: Final = True
_FLAT: Final = False

_Command: TypeAlias = tuple[int, bool, Doc]  # (indent, break mode, document)


class _Printer:
    """Prints a document at :data:`WIDTH` columns (Wadler's algorithm, as in Prettier)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.line: list[str] = []
        self.pos = 0  # the current column
        self.indent = 0  # where text starts on the current line, if it is still empty
        self.suffix: list[str] = []  # comments waiting for the end of the line
        self.lazy = False  # whether the last suffix must end the line before more text
        # Keyed by id(); the entry keeps the document alive so that its id is not reused.
        self._breaks: dict[int, tuple[Doc, bool]] = {}

    # ------------------------------------------------------------ forced breaks

    def breaks(self, doc: Doc) -> bool:
        """Whether ``doc`` holds something that forces enclosing groups to break."""
        if isinstance(doc, str | _Line | _FillStep):
            return False
        key = id(doc)
        known = self._breaks.get(key)
        if known is not None:
            return known[1]
        result: bool
        if isinstance(doc, tuple):
            result = any(self.breaks(part) for part in doc)
        elif isinstance(doc, _BreakParent | _Comment):
            result = True
        elif isinstance(doc, _Group):
            result = doc.force or self.breaks(doc.contents)
        elif isinstance(doc, _Indent | _Align):
            result = self.breaks(doc.contents)
        elif isinstance(doc, _IfBreak):
            # The broken branch is only printed when the group already breaks.
            result = self.breaks(doc.flat)
        else:
            result = any(self.breaks(item.doc) for item in doc.items)
        self._breaks[key] = (doc, result)
        return result

    # ------------------------------------------------------------ output

    def text(self, text: str, indent: int) -> None:
        if not text:
            return
        if self.lazy:
            self.newline(indent)
            text = text.lstrip(" ")  # a space before the next token is not needed now
            if not text:
                return
        if not self.line:
            self.line.append(" " * self.indent)
        self.line.append(text)
        self.pos += len(text)

    def comment(self, comment: _Comment, indent: int) -> None:
        if self.lazy:  # two comments may never share a line
            self.newline(indent)
        self.suffix.append(comment.text)
        self.lazy = comment.lazy

    def newline(self, indent: int) -> None:
        if len(self.suffix) > 1:
            raise AssertionError("two comments on one output line")
        line = "".join(self.line).rstrip()
        if self.suffix:
            line = f"{line}  {self.suffix[0]}" if line else self.suffix[0]
        self.lines.append(line)
        self.line = []
        self.suffix = []
        self.lazy = False
        self.indent = max(indent, 0)
        self.pos = self.indent

    def finish(self) -> str:
        if self.line or self.suffix:
            self.newline(0)
        while self.lines and not self.lines[-1]:
            self.lines.pop()
        while self.lines and not self.lines[0]:
            self.lines.pop(0)
        return "\n".join(self.lines) + "\n" if self.lines else ""

    # ------------------------------------------------------------ layout

    def fits(self, command: _Command, rest: Sequence[_Command], width: int) -> bool:
        """Whether ``command`` (flat) and what follows it up to the next line break fit."""
        stack: list[tuple[bool, Doc]] = [(command[1], command[2])]
        rest_index = len(rest)
        while width >= 0:
            if not stack:
                if rest_index == 0:
                    return True
                rest_index -= 1
                stack.append((rest[rest_index][1], rest[rest_index][2]))
                continue
            mode, doc = stack.pop()
            if isinstance(doc, str):
                width -= len(doc)
            elif isinstance(doc, tuple):
                stack.extend((mode, part) for part in reversed(doc))
            elif isinstance(doc, _Indent | _Align):
                stack.append((mode, doc.contents))
            elif isinstance(doc, _Group):
                stack.append((_BREAK if self.breaks(doc) else mode, doc.contents))
            elif isinstance(doc, _IfBreak):
                stack.append((mode, doc.broken if mode is _BREAK else doc.flat))
            elif isinstance(doc, _Line):
                if mode is _BREAK or doc.hard:
                    return True
                width -= 1
            elif isinstance(doc, _Comment):
                if doc.lazy:
                    return True
            elif isinstance(doc, _Fill):
                parts: list[Doc] = []
                for index, item in enumerate(doc.items):
                    if index:
                        parts.append(_Line(hard=item.blank or self.breaks(item.above)))
                    parts.append(item.doc)
                stack.append((mode, tuple(parts)))
            elif isinstance(doc, _FillStep):
                return True
        return False

    def print(self, doc: Doc) -> str:
        commands: list[_Command] = [(0, _BREAK, doc)]
        while commands:
            indent, mode, doc = commands.pop()
            if isinstance(doc, str):
                self.text(doc, indent)
            elif isinstance(doc, tuple):
                commands.extend((indent, mode, part) for part in reversed(doc))
            elif isinstance(doc, _Indent):
                commands.append((indent + doc.by, mode, doc.contents))
            elif isinstance(doc, _Align):
                commands.append((self.pos, mode, doc.contents))
            elif isinstance(doc, _Group):
                if mode is _FLAT and not self.breaks(doc):
                    commands.append((indent, _FLAT, doc.contents))
                elif self.breaks(doc):
                    commands.append((indent, _BREAK, doc.contents))
                else:
                    flat: _Command = (indent, _FLAT, doc.contents)
                    fits = self.fits(flat, commands, WIDTH - self.pos)
                    commands.append(flat if fits else (indent, _BREAK, doc.contents))
            elif isinstance(doc, _IfBreak):
                commands.append((indent, mode, doc.broken if mode is _BREAK else doc.flat))
            elif isinstance(doc, _Line):
                if mode is _FLAT and not doc.hard and not self.lazy:
                    self.text(" ", indent)
                else:
                    self.newline(indent)
            elif isinstance(doc, _Comment):
                self.comment(doc, indent)
            elif isinstance(doc, _Fill):
                if doc.items:
                    commands.append((indent, mode, _FillStep(doc, 0)))
            elif isinstance(doc, _FillStep):
                self.fill_step(doc, indent, commands)
        return self.finish()

    def fill_step(self, step: _FillStep, indent: int, commands: list[_Command]) -> None:
        item = step.fill.items[step.index]
        flat: _Command = (indent, _FLAT, item.doc)
        if step.index:
            previous = step.fill.items[step.index - 1]
            if item.blank:
                self.newline(indent)
                self.newline(indent)
            elif (
                self.lazy
                or self.breaks(previous.body)
                or self.breaks(item.doc)
                or not self.fits(flat, (), WIDTH - self.pos - 1)
            ):
                self.newline(indent)
            else:
                self.text(" ", indent)
        if step.index + 1 < len(step.fill.items):
            commands.append((indent, _BREAK, _FillStep(step.fill, step.index + 1)))
        fits = not self.breaks(item.doc) and self.fits(flat, (), WIDTH - self.pos)
        commands.append(flat if fits else (indent, _BREAK, item.doc))


# ================================================================ from parse tree to document


@dataclass(slots=True)
class _CommentInfo:
    text: str
    start: int
    end: int
    line: int
    trailing: bool  # code before it on its line
    anchor: int  # trailing: the token before it; else the token after it (len = end of file)


@dataclass(frozen=True, slots=True)
class _Unit:
    """A piece of layout that can carry comments: it starts a line when they need one."""

    kind: str  # decl, prop, body_prop, item, operand, first_operand, close
    first: int  # token indices
    last: int
    depth: int
    alt_last: int | None = None  # an item's value when a comma follows it
    head: int | None = None  # a block declaration's `{`, the end of its first line

    @property
    def key(self) -> _UnitKey:
        # Nested first operands can start together (`a and b or c`), never end together.
        return (self.kind, self.last if self.kind == "first_operand" else self.first)


_UnitKey: TypeAlias = tuple[str, int]


_DECLARATIONS: Final = frozenset(
    {
        "block_declaration",
        "value_declaration",
        "modified_block_declaration",
        "modified_value_declaration",
    }
)


def _leaves(tree: Tree[Token]) -> Iterator[Token]:
    stack: list[Tree[Token] | Token | None] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Token):
            yield node
        elif isinstance(node, Tree):
            stack.extend(reversed(node.children))


def _subtrees(tree: Tree[Token]) -> list[Tree[Token]]:
    return [child for child in tree.children if isinstance(child, Tree)]


def _chain(tree: Tree[Token]) -> tuple[list[Tree[Token]], list[Token]]:
    """Flatten a left-nested `a or b or c` into its operands and operators, iteratively."""
    operands: list[Tree[Token]] = []
    operators: list[Token] = []
    node = tree
    while True:
        left, operator, right = node.children
        if not (isinstance(left, Tree) and isinstance(right, Tree)):
            raise ValueError(f"{tree.data} without two operands")
        if not isinstance(operator, Token):
            raise ValueError(f"{tree.data} without an operator")
        operands.append(right)
        operators.append(operator)
        if left.data != tree.data:
            operands.append(left)
            break
        node = left
    operands.reverse()
    operators.reverse()
    return operands, operators


def _items(tree: Tree[Token]) -> list[tuple[Tree[Token], Token | None]]:
    """The values of a list or an argument list, each with the comma after it, if any."""
    items: list[tuple[Tree[Token], Token | None]] = []
    for child in tree.children:
        if isinstance(child, Tree):
            items.append((child, None))
        elif isinstance(child, Token) and child.type == "COMMA" and items:
            items[-1] = (items[-1][0], child)
    return items


def _block_parts(tree: Tree[Token]) -> tuple[Token, list[Tree[Token]], Token]:
    tokens = [child for child in tree.children if isinstance(child, Token)]
    properties = [child for child in _subtrees(tree) if child.data == "property"]
    return tokens[0], properties, tokens[-1]


def _bracket_parts(tree: Tree[Token]) -> tuple[Token, Token]:
    tokens = [c for c in tree.children if isinstance(c, Token) and c.type in _BRACKETS]
    return tokens[0], tokens[-1]


_BRACKETS: Final = frozenset({"LBRACKET", "RBRACKET", "LPAREN", "RPAREN"})
_BLANK_LINE: Final = re.compile(r"\n[^\S\n]*\n")


def _arguments(tree: Tree[Token]) -> Tree[Token]:
    for child in _subtrees(tree):
        if child.data == "arguments":
            return child
    raise ValueError(f"{tree.data} without arguments")


class _Layout:
    """Builds the document for one file and prints it."""

    def __init__(self, text: str, tree: Tree[Token], comments: Sequence[Token]) -> None:
        self.text = text
        self.tree = tree
        self.tokens = list(_leaves(tree))
        self.index = {_start(token): i for i, token in enumerate(self.tokens)}
        self.units: dict[_UnitKey, _Unit] = {}
        self._collect(tree)
        self.leading: dict[_UnitKey, list[_CommentInfo]] = {}
        self.trailing: dict[_UnitKey, _CommentInfo] = {}
        self.token_comments: dict[int, _CommentInfo] = {}
        self.first_line: dict[_UnitKey, _CommentInfo] = {}
        self.end_comments: list[_CommentInfo] = []
        self._assign([self._info(token) for token in comments])

    # ------------------------------------------------------------ positions

    def at(self, token: Token) -> int:
        return self.index[_start(token)]

    def first(self, tree: Tree[Token]) -> int:
        return self.at(next(_leaves(tree)))

    def last(self, tree: Tree[Token]) -> int:
        return self.at(_last_leaf(tree))

    def newlines(self, start: int, end: int) -> int:
        return self.text.count("\n", start, end) if end > start else 0

    def blank(self, start: int, end: int) -> bool:
        """Whether the source has a blank line between ``start`` and ``end``."""
        return _BLANK_LINE.search(self.text, start, max(start, end)) is not None

    # ------------------------------------------------------------ units

    def _unit(
        self,
        kind: str,
        first: int,
        last: int,
        depth: int,
        alt: int | None = None,
        head: int | None = None,
    ) -> None:
        unit = _Unit(kind, first, last, depth, alt, head)
        self.units[unit.key] = unit

    def _collect(self, tree: Tree[Token]) -> None:
        """Record every unit of the file with its token range and nesting depth."""
        stack = [(d, 0) for d in reversed(_subtrees(tree))]
        bodies: set[int] = set()
        while stack:
            node, depth = stack.pop()
            children: list[tuple[Tree[Token], int]] = []
            data = node.data
            if data in _DECLARATIONS:
                children = [(child, depth + 1) for child in _subtrees(node)]
                head = None
                if data in ("block_declaration", "modified_block_declaration"):
                    bodies.add(id(children[0][0]))
                    head = self.first(children[0][0])
                self._unit("decl", self.first(node), self.last(node), depth, head=head)
            elif data == "block":
                _, properties, close = _block_parts(node)
                self._unit("close", self.at(close), self.at(close), depth)
                kind = "body_prop" if id(node) in bodies else "prop"
                for prop in properties:
                    self._unit(kind, self.first(prop), self.last(prop), depth)
                    children.append((prop, depth + 1))
            elif data in ("list", "arguments"):
                close = _bracket_parts(node)[1] if data == "list" else self._closing_paren(node)
                self._unit("close", self.at(close), self.at(close), depth)
                for value, comma in _items(node):
                    last = self.last(value)
                    if comma is None:
                        self._unit("item", self.first(value), last, depth)
                    else:
                        self._unit("item", self.first(value), self.at(comma), depth, last)
                    children.append((value, depth + 1))
            elif data in ("or_expr", "and_expr"):
                operands, operators = _chain(node)
                # The first operand takes comments beside its end only (it never starts
                # a line of its own).
                first = operands[0]
                self._unit("first_operand", self.first(first), self.last(first), depth)
                children.append((first, depth + 1))
                for operator, operand in zip(operators, operands[1:], strict=True):
                    self._unit("operand", self.at(operator), self.last(operand), depth)
                    children.append((operand, depth + 1))
            else:
                children = [(child, depth) for child in _subtrees(node)]
            stack.extend(reversed(children))

    def _closing_paren(self, arguments: Tree[Token]) -> Token:
        # The `)` of any(...)/all(...) is the token after the arguments.
        return self.tokens[self.last(arguments) + 1]

    # ------------------------------------------------------------ comments

    def _info(self, token: Token) -> _CommentInfo:
        start = _start(token)
        end = start + len(str(token))
        line_start = self.text.rfind("\n", 0, start) + 1
        trailing = bool(self.text[line_start:start].strip())
        after = _bisect(self.tokens, start)
        anchor = after - 1 if trailing else after
        if trailing and anchor < 0:  # INVARIANT: code before a trailing comment is a token
            raise ValueError("trailing comment without a token before it")
        return _CommentInfo(str(token).rstrip(), start, end, token.line or 0, trailing, anchor)

    def _assign(self, comments: list[_CommentInfo]) -> None:
        """Attach every comment to the unit (or token) it will be printed with."""
        ending: dict[int, list[_Unit]] = {}
        starting: dict[int, list[_Unit]] = {}
        for unit in self.units.values():
            ending.setdefault(unit.last, []).append(unit)
            if unit.alt_last is not None:
                ending.setdefault(unit.alt_last, []).append(unit)
            if unit.kind != "first_operand":
                starting.setdefault(unit.first, []).append(unit)
        for comment in comments:
            if comment.trailing:
                candidates = [u for u in ending.get(comment.anchor, ()) if u.kind != "close"]
                if candidates:
                    outer = min(candidates, key=lambda u: u.depth)
                    key = outer.key
                    earlier = self.trailing.get(key)
                    if earlier is not None:  # beside an item's value and beside its comma
                        self.token_comments[earlier.anchor] = earlier
                    self.trailing[key] = comment
                else:
                    self.token_comments[comment.anchor] = comment
                continue
            if comment.anchor >= len(self.tokens):
                self.end_comments.append(comment)
                continue
            starts = starting.get(comment.anchor)
            if starts:
                unit = min(starts, key=lambda u: u.depth)
            else:  # inside a construct that cannot start a line there: before the unit
                inside = [
                    u
                    for u in self.units.values()
                    if u.first < comment.anchor <= u.last and u.kind != "first_operand"
                ]
                if not inside:
                    raise ValueError("comment outside every declaration")
                unit = max(inside, key=lambda u: u.depth)
            self.leading.setdefault(unit.key, []).append(comment)
        self._move_to_first_lines(comments)

    def _move_to_first_lines(self, comments: list[_CommentInfo]) -> None:
        """Comments beside a token in mid-construct go to the end of its statement's first line.

        `detect: # why` then the condition on the next lines reads as
        `detect: a or b  # why`. Only when no other comment could share that line;
        otherwise the comment stays right after its token, which then ends the line.
        """
        statements = [u for u in self.units.values() if u.kind in ("decl", "body_prop")]
        for anchor, comment in list(self.token_comments.items()):
            containing = [u for u in statements if u.first <= anchor <= u.last]
            if not containing:
                continue
            unit = max(containing, key=lambda u: u.depth)
            key = unit.key
            last = unit.last
            if unit.head is not None and (
                unit.head + 1 < unit.last or ("close", unit.last) in self.leading
            ):
                last = unit.head  # the body starts a new line
            if anchor > last:
                continue
            # Comments on lines of their own are printed above the statement; only
            # another comment beside a token of that line could want the same line.
            if key in self.first_line or any(
                other is not comment and other.trailing and unit.first <= other.anchor <= last
                for other in comments
            ):
                continue
            del self.token_comments[anchor]
            self.first_line[key] = comment

    def comments_above(self, key: _UnitKey, start: int) -> Doc:
        """The unit's own comment lines, each followed by a line break (blank lines kept)."""
        comments = sorted(self.leading.get(key, ()), key=lambda c: c.start)
        parts: list[Doc] = []
        for index, comment in enumerate(comments):
            parts += [comment.text, _HARD]
            following = comments[index + 1].start if index + 1 < len(comments) else start
            if self.blank(comment.end, following):
                parts.append(_HARD)
        return tuple(parts)

    def slot_start(self, key: _UnitKey, start: int) -> int:
        """Where the unit's slot starts in the source: its first comment, or itself."""
        comments = self.leading.get(key)
        return min([start] + [c.start for c in comments]) if comments else start

    def after(self, key: _UnitKey) -> Doc:
        """The comment trailing a unit, printed after it; it ends the unit's last line."""
        comment = self.trailing.get(key)
        if comment is None:
            return ()
        return (_Comment(comment.text, lazy=True), _BreakParent())

    def has_comments(self, key: _UnitKey) -> bool:
        return key in self.leading or key in self.trailing

    # ------------------------------------------------------------ tokens

    def tok(self, token: Token) -> Doc:
        comment = self.token_comments.get(self.at(token))
        if comment is None:
            return _token_text(token)
        return (_token_text(token), _Comment(comment.text, lazy=True), _BreakParent())

    def tokens_of(self, tree: Tree[Token]) -> Doc:
        """An atomic construct: its tokens separated by single spaces."""
        parts: list[Doc] = []
        for child in tree.children:
            if child is None:
                continue
            if isinstance(child, Token):
                parts += [" ", self.tok(child)] if parts else [self.tok(child)]
            elif child.data == "subscript":  # `name[key]`, no spaces
                parts += [self.tok(token) for token in _leaves(child)]
            else:
                parts += [" ", self.value(child)] if parts else [self.value(child)]
        return tuple(parts)

    # ------------------------------------------------------------ file and declarations

    def render(self) -> str:
        parts: list[Doc] = []
        declarations = _subtrees(self.tree)
        for index, declaration in enumerate(declarations):
            key = ("decl", self.first(declaration))
            if index:
                parts += [_HARD, _HARD]
            parts.append(self.statement(key, self.declaration(declaration)))
        if self.end_comments:
            if declarations:
                parts += [_HARD, _HARD]
            for index, comment in enumerate(self.end_comments):
                if index and self.blank(self.end_comments[index - 1].end, comment.start):
                    parts.append(_HARD)
                parts += [comment.text, _HARD]
        return _Printer().print(tuple(parts))

    def statement(self, key: _UnitKey, body: Doc) -> Doc:
        """A declaration or a declaration's property: comments above, one beside."""
        start = _start(self.tokens[key[1]])
        above = self.comments_above(key, start)
        moved = self.first_line.get(key)
        if moved is not None:
            above = (above, _Comment(moved.text, lazy=False))
        comment = self.trailing.get(key)
        if comment is None:
            return (above, body)
        if comment.line == self.tokens[key[1]].line:
            # Written on the construct's first line: keep it on its first line, where
            # a `# policylang: allow(...)` comment has to be.
            return (above, _Comment(comment.text, lazy=False), body)
        return (above, body, _Comment(comment.text, lazy=True))

    def declaration(self, tree: Tree[Token]) -> Doc:
        words = [c for c in tree.children if isinstance(c, Token) and c.type == "NAME"]
        head: Doc = tuple(part for word in words for part in (self.tok(word), " "))
        if tree.data in ("value_declaration", "modified_value_declaration"):
            equals = next(c for c in tree.children if isinstance(c, Token) and c.type == "EQUALS")
            value = _subtrees(tree)[0]
            return (head, self.tok(equals), " ", self.value(value, top=True))
        return (head, self.body(_subtrees(tree)[0]))

    def body(self, block: Tree[Token]) -> Doc:
        """A declaration's block: always one property per line."""
        opening, properties, closing = _block_parts(block)
        close_key = ("close", self.at(closing))
        if not properties and close_key not in self.leading:
            return (self.tok(opening), self.tok(closing))
        inner: list[Doc] = []
        previous_end = _end(opening)
        for index, prop in enumerate(properties):
            key = ("body_prop", self.first(prop))
            start = _start(self.tokens[key[1]])
            inner.append(_HARD)
            if index and self.blank(previous_end, self.slot_start(key, start)):
                inner.append(_HARD)
            inner.append(self.statement(key, self.property(prop)))
            previous_end = _end(self.tokens[self.last(prop)])
        inner.append(self.closing_comments(close_key, previous_end, bool(properties)))
        return (self.tok(opening), _Indent(INDENT, tuple(inner)), _HARD, self.tok(closing))

    def closing_comments(self, key: _UnitKey, previous_end: int, has_items: bool) -> Doc:
        """Comments before a closing bracket, on their own lines inside the brackets."""
        comments = sorted(self.leading.get(key, ()), key=lambda c: c.start)
        parts: list[Doc] = []
        for index, comment in enumerate(comments):
            before = comments[index - 1].end if index else previous_end
            parts.append(_HARD)
            if (index or has_items) and self.blank(before, comment.start):
                parts.append(_HARD)
            parts.append(comment.text)
        return tuple(parts)

    def property(self, prop: Tree[Token]) -> Doc:
        key, colon = (c for c in prop.children if isinstance(c, Token))
        return (self.tok(key), self.tok(colon), " ", self.value(_subtrees(prop)[0], top=True))

    # ------------------------------------------------------------ values

    def value(self, tree: Tree[Token], *, top: bool = False) -> Doc:
        data = tree.data
        if data in ("or_expr", "and_expr"):
            return self.chain(tree, top)
        if data == "group":
            opening, closing = _bracket_parts(tree)
            return (self.tok(opening), _Align(self.value(_subtrees(tree)[0])), self.tok(closing))
        if data in ("any_of", "all_of"):
            return self.call(tree)
        if data == "list":
            return self.list(tree)
        if data == "block":
            return self.nested_block(tree)
        return self.tokens_of(tree)

    def chain(self, tree: Tree[Token], top: bool) -> Doc:
        """`a or b or c`: on one line, or one operand per line, broken before the operator.

        A property's own condition hangs its operators left of the first operand, so the
        operands line up under it (``detect: a\\n       or b``); a chain nested in another
        puts its operators where it starts. A chain the author broke stays broken.
        """
        operands, operators = _chain(tree)
        first = ("first_operand", self.last(operands[0]))
        parts: list[Doc] = [self.value(operands[0]), self.after(first)]
        broken = False
        for operator, operand, previous in zip(operators, operands[1:], operands[:-1], strict=True):
            key = ("operand", self.at(operator))
            end = _end(self.tokens[self.last(previous)])
            broken = broken or self.newlines(end, _start(self.tokens[self.first(operand)])) > 0
            above = self.comments_above(key, _start(operator))
            separator: Doc = (_LINE, above, self.tok(operator), " ")
            if top:
                separator = _Indent(-len(str(operator)) - 1, separator)
            parts += [separator, _Align(self.value(operand)), self.after(key)]
        return _Group(_Align(tuple(parts)), force=broken)

    def list(self, tree: Tree[Token]) -> Doc:
        """`[a, b]`: on one line if it fits, else packed onto lines, with a trailing comma."""
        opening, closing = _bracket_parts(tree)
        close_key = ("close", self.at(closing))
        items = _items(tree)
        if not items and close_key not in self.leading:
            return (self.tok(opening), self.tok(closing))
        fill: list[_FillItem] = []
        flat: list[Doc] = []
        force = close_key in self.leading
        previous_end = _end(opening)
        for index, (value, comma) in enumerate(items):
            key = ("item", self.first(value))
            start = _start(self.tokens[key[1]])
            doc = self.value(value)
            flat += [", ", doc] if flat else [doc]
            above = self.comments_above(key, start)
            blank = index > 0 and self.blank(previous_end, self.slot_start(key, start))
            fill.append(_FillItem(above, (doc, ",", self.after(key)), blank))
            force = force or self.has_comments(key)
            previous_end = _end(comma if comma is not None else self.tokens[self.last(value)])
        last = self.closing_comments(close_key, previous_end, bool(items))
        broken: Doc = (_Indent(INDENT, ((_HARD, _Fill(tuple(fill))) if fill else (), last)), _HARD)
        return _Group(
            (self.tok(opening), _IfBreak(broken, tuple(flat)), self.tok(closing)), force=force
        )

    def call(self, tree: Tree[Token]) -> Doc:
        """`any(a, b)`: on one line if it fits, else one argument per line."""
        keyword = next(c for c in tree.children if isinstance(c, Token))
        opening, closing = _bracket_parts(tree)
        close_key = ("close", self.at(closing))
        force = close_key in self.leading
        broken: list[Doc] = []
        flat: list[Doc] = []
        previous_end = _end(opening)
        for value, comma in _items(_arguments(tree)):
            key = ("item", self.first(value))
            start = _start(self.tokens[key[1]])
            doc = self.value(value)
            flat += [", ", doc] if flat else [doc]
            broken.append(_HARD)
            if len(broken) > 1 and self.blank(previous_end, self.slot_start(key, start)):
                broken.append(_HARD)
            broken += [self.comments_above(key, start), doc, ",", self.after(key)]
            force = force or self.has_comments(key)
            previous_end = _end(comma if comma is not None else self.tokens[self.last(value)])
        broken.append(self.closing_comments(close_key, previous_end, True))
        return _Group(
            (
                self.tok(keyword),
                self.tok(opening),
                _IfBreak((_Indent(INDENT, tuple(broken)), _HARD), tuple(flat)),
                self.tok(closing),
            ),
            force=force,
        )

    def nested_block(self, tree: Tree[Token]) -> Doc:
        """`{ a: "x" b: "y" }` as a value: on one line if it fits, else a property per line."""
        opening, properties, closing = _block_parts(tree)
        close_key = ("close", self.at(closing))
        if not properties and close_key not in self.leading:
            return (self.tok(opening), self.tok(closing))
        force = close_key in self.leading
        broken: list[Doc] = []
        flat: list[Doc] = []
        previous_end = _end(opening)
        for prop in properties:
            key = ("prop", self.first(prop))
            start = _start(self.tokens[key[1]])
            doc = self.property(prop)
            flat += [" ", doc] if flat else [doc]
            broken.append(_HARD)
            if len(broken) > 1 and self.blank(previous_end, self.slot_start(key, start)):
                broken.append(_HARD)
            broken += [self.comments_above(key, start), doc, self.after(key)]
            force = force or self.has_comments(key)
            previous_end = _end(self.tokens[self.last(prop)])
        broken.append(self.closing_comments(close_key, previous_end, bool(properties)))
        return _Group(
            (
                self.tok(opening),
                _IfBreak((_Indent(INDENT, tuple(broken)), _HARD), (" ", tuple(flat), " ")),
                self.tok(closing),
            ),
            force=force,
        )


def _start(token: Token) -> int:
    # INVARIANT: with propagate_positions every token has positions.
    if token.start_pos is None:
        raise ValueError(f"token {token.type} without a position")
    return token.start_pos


def _end(token: Token) -> int:
    if token.end_pos is None:
        raise ValueError(f"token {token.type} without a position")
    return token.end_pos


def _last_leaf(tree: Tree[Token]) -> Token:
    node: Tree[Token] | Token = tree
    while isinstance(node, Tree):
        children = [c for c in node.children if c is not None]
        node = children[-1]
    return node


def _bisect(tokens: Sequence[Token], position: int) -> int:
    """Index of the first token that starts at or after ``position``."""
    low, high = 0, len(tokens)
    while low < high:
        middle = (low + high) // 2
        if _start(tokens[middle]) < position:
            low = middle + 1
        else:
            high = middle
    return low


# ================================================================ verification


def _token_keys(tree: Tree[Token]) -> list[tuple[str, str]]:
    """The tokens as the formatter writes them, without trailing commas (layout adds them)."""
    keys = [(token.type, _token_text(token)) for token in _leaves(tree)]
    return [
        key
        for index, key in enumerate(keys)
        if not (
            key[0] == "COMMA"
            and index + 1 < len(keys)
            and keys[index + 1][0] in ("RBRACKET", "RPAREN")
        )
    ]


def _verify(
    source: SourceFile,
    tree: Tree[Token],
    comments: Sequence[Token],
    ast: object,
    text: str,
) -> str | None:
    """Why ``text`` is not the same policy as ``source``, or None when it is."""
    output = SourceFile(source.path, text)
    sink = DiagnosticSink()
    new_comments: list[Token] = []
    new_tree = parse_tree(output, sink, comments=new_comments)
    if new_tree is None:
        first = sink.sorted()[0] if sink.diagnostics else None
        return f"the output does not parse: {first.message if first else 'no diagnostic'}"
    new_ast = build(new_tree, output, sink)
    if new_ast is None or sink.has_errors:
        return "the output has errors"
    if new_ast != ast:
        return "the output's syntax tree differs from the input's"
    if _token_keys(new_tree) != _token_keys(tree):
        return "the output's tokens differ from the input's"
    if Counter(str(c).rstrip() for c in new_comments) != Counter(str(c).rstrip() for c in comments):
        return "the output's comments differ from the input's"
    return None
