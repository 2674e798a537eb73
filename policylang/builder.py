"""Building the typed AST (:mod:`policylang.nodes`) from the lark parse tree.

A plain recursive walk over the tree, run after parsing so every node has positions.
Literals are decoded here (:mod:`policylang.literals`); their problems become
diagnostics and building continues. Nothing in this module raises for bad policy text.
"""

from __future__ import annotations

from dataclasses import replace

from lark import Token, Tree

from policylang import nodes
from policylang.diagnostics import DiagnosticSink
from policylang.literals import decode_regex, decode_string, number_value
from policylang.parser import parse_tree
from policylang.source import SourceFile, Span

__all__ = ["MAX_NESTING", "build", "parse"]

#: How deeply values may nest (parentheses, `not`, lists, blocks, `any`/`all`). Real
#: policies nest a handful of levels; the limit keeps every recursive stage, this one
#: included, far from Python's recursion limit.
MAX_NESTING = 64

_COMPARATORS: dict[str, nodes.Comparator] = {
    ">=": ">=",
    "<=": "<=",
    "==": "==",
    "!=": "!=",
    ">": ">",
    "<": "<",
}


class _TooDeep(Exception):
    """Raised inside the builder when values nest beyond :data:`MAX_NESTING`."""

    def __init__(self, span: Span) -> None:
        super().__init__(span)
        self.span = span


class _ShapeError(Exception):
    """The tree does not have the shape the grammar promises: a builder bug."""


def parse(source: SourceFile, sink: DiagnosticSink) -> nodes.PolicyFile | None:
    """Parse and build ``source``; return None when it has a syntax error.

    Syntax errors (PL101-PL104, PL106) stop the file. Literal problems such as an
    invalid escape (PL105) are reported and the tree is still returned.
    """
    tree = parse_tree(source, sink)
    if tree is None:
        return None
    return build(tree, source, sink)


def build(tree: Tree[Token], source: SourceFile, sink: DiagnosticSink) -> nodes.PolicyFile | None:
    """Turn a parse tree of ``source`` into a :class:`~policylang.nodes.PolicyFile`.

    Returns None (with a diagnostic) only when values nest too deeply (PL106) or on an
    internal error (PL900).
    """
    try:
        return _Builder(source, sink).policy_file(tree)
    except _TooDeep as too_deep:
        sink.error(
            "PL106",
            "value is nested too deeply",
            source.path,
            too_deep.span,
            label=f"more than {MAX_NESTING} levels deep",
            help="split the condition into named signals or simpler parts",
        )
    except Exception as bug:  # a builder bug must become a diagnostic, not a traceback
        sink.error(
            "PL900",
            f"internal error while building the syntax tree: {type(bug).__name__}",
            source.path,
            Span.empty(0),
            help="this is a bug in policylang; please report it with the file that caused it",
            notes=(str(bug),) if str(bug) else (),
        )
    return None


def _pos(value: int | None) -> int:
    # INVARIANT: with propagate_positions, every token and non-empty tree has positions.
    if value is None:
        raise _ShapeError("missing position")
    return value


def _token_span(token: Token) -> Span:
    return Span(_pos(token.start_pos), _pos(token.end_pos))


def _tree_span(tree: Tree[Token]) -> Span:
    return Span(_pos(tree.meta.start_pos), _pos(tree.meta.end_pos))


def _tokens(tree: Tree[Token], token_type: str) -> list[Token]:
    return [c for c in tree.children if isinstance(c, Token) and c.type == token_type]


def _token(tree: Tree[Token], token_type: str, index: int = 0) -> Token:
    found = _tokens(tree, token_type)
    if len(found) <= index:
        raise _ShapeError(f"{tree.data}: no {token_type} #{index}")
    return found[index]


def _subtrees(tree: Tree[Token]) -> list[Tree[Token]]:
    return [c for c in tree.children if isinstance(c, Tree)]


def _subtree(tree: Tree[Token], data: str | None = None) -> Tree[Token] | None:
    for child in tree.children:
        if isinstance(child, Tree) and (data is None or child.data == data):
            return child
    return None


class _Builder:
    """One walk over one file's tree."""

    def __init__(self, source: SourceFile, sink: DiagnosticSink) -> None:
        self.source = source
        self.sink = sink

    # ------------------------------------------------------------ declarations

    def policy_file(self, tree: Tree[Token]) -> nodes.PolicyFile:
        declarations = tuple(self.declaration(child) for child in _subtrees(tree))
        return nodes.PolicyFile(declarations=declarations, span=Span(0, len(self.source.text)))

    def declaration(self, tree: Tree[Token]) -> nodes.Declaration:
        words = [self.name(token) for token in _tokens(tree, "NAME")]
        modifier: nodes.Name | None = None
        if tree.data.startswith("modified_"):
            if len(words) != 3:
                raise _ShapeError(f"{tree.data} with {len(words)} names")
            modifier, kind, name = words
        else:
            if len(words) != 2:
                raise _ShapeError(f"{tree.data} with {len(words)} names")
            kind, name = words
        span = _tree_span(tree)
        if tree.data in ("block_declaration", "modified_block_declaration"):
            body = _subtree(tree, "block")
            if body is None:
                raise _ShapeError("block_declaration without a block")
            return nodes.Declaration(
                kind=kind,
                name=name,
                body=self.block(body, 1),
                value=None,
                modifier=modifier,
                span=span,
            )
        if tree.data in ("value_declaration", "modified_value_declaration"):
            value = _subtree(tree)
            if value is None:
                raise _ShapeError("value_declaration without a value")
            return nodes.Declaration(
                kind=kind,
                name=name,
                body=None,
                value=self.value(value, 1),
                modifier=modifier,
                span=span,
            )
        raise _ShapeError(f"unknown declaration {tree.data}")

    def block(self, tree: Tree[Token], depth: int) -> nodes.Block:
        properties = tuple(
            self.property(child, depth) for child in _subtrees(tree) if child.data == "property"
        )
        return nodes.Block(properties=properties, span=_tree_span(tree))

    def property(self, tree: Tree[Token], depth: int) -> nodes.Property:
        value = _subtree(tree)
        if value is None:
            raise _ShapeError("property without a value")
        return nodes.Property(
            key=self.name(_token(tree, "NAME")),
            value=self.value(value, depth + 1),
            span=_tree_span(tree),
        )

    # ------------------------------------------------------------ values

    def value(self, tree: Tree[Token], depth: int) -> nodes.Value:
        if depth > MAX_NESTING:
            raise _TooDeep(_tree_span(tree))
        span = _tree_span(tree)
        match tree.data:
            case "or_expr":
                return nodes.Or(items=self.chain(tree, "or_expr", depth), span=span)
            case "and_expr":
                return nodes.And(items=self.chain(tree, "and_expr", depth), span=span)
            case "not_expr":
                return nodes.Not(item=self.only_value(tree, depth), span=span)
            case "group":
                # The parentheses only group: keep the inner node, widen its span.
                return replace(self.only_value(tree, depth), span=span)
            case "any_of":
                return nodes.AnyOf(items=self.arguments(tree, depth), span=span)
            case "all_of":
                return nodes.AllOf(items=self.arguments(tree, depth), span=span)
            case "keywords":
                return nodes.Keywords(source=self.term_source(tree, depth), span=span)
            case "pattern":
                return nodes.PatternMatch(source=self.pattern_source(tree), span=span)
            case "score":
                return nodes.Score(
                    key=self.string(_token(tree, "STRING")),
                    op=self.comparator(_token(tree, "COMPARATOR")),
                    threshold=self.number_or_ref(tree),
                    span=span,
                )
            case "annotation":
                return nodes.Annotation(label=self.string(_token(tree, "STRING")), span=span)
            case "comparison":
                return self.comparison(tree, span)
            case "membership":
                options = _subtree(tree, "list")
                if options is None:
                    raise _ShapeError("membership without a list")
                return nodes.Membership(
                    subject=self.name(_token(tree, "NAME")),
                    options=self.list_value(options, depth),
                    span=span,
                )
            case "reset_after":
                return nodes.ResetAfter(turns=self.number_or_ref(tree), span=span)
            case "duration":
                return nodes.Duration(turns=self.number(_token(tree, "NUMBER")), span=span)
            case "list":
                return self.list_value(tree, depth)
            case "block":
                return self.block(tree, depth)
            case "string":
                return self.string(_token(tree, "STRING"))
            case "number":
                return self.number(_token(tree, "NUMBER"))
            case "regex":
                return self.regex(_token(tree, "REGEX"))
            case "name":
                return self.ref(_token(tree, "NAME"))
        raise _ShapeError(f"unknown value {tree.data}")

    def only_value(self, tree: Tree[Token], depth: int) -> nodes.Value:
        inner = _subtree(tree)
        if inner is None:
            raise _ShapeError(f"{tree.data} without an operand")
        return self.value(inner, depth + 1)

    def chain(self, tree: Tree[Token], data: str, depth: int) -> tuple[nodes.Value, ...]:
        """Flatten a left-nested `a or b or c` into its operands, without recursion.

        Only the grammar's own nesting is flattened: a parenthesised `(a or b) or c`
        keeps its group, so the tree still says what was written.
        """
        right: list[Tree[Token]] = []
        node = tree
        while True:
            operands = _subtrees(node)
            if len(operands) != 2:
                raise _ShapeError(f"{data} with {len(operands)} operands")
            left, last = operands
            right.append(last)
            if left.data != data:
                right.append(left)
                break
            node = left
        return tuple(self.value(operand, depth + 1) for operand in reversed(right))

    def arguments(self, tree: Tree[Token], depth: int) -> tuple[nodes.Value, ...]:
        arguments = _subtree(tree, "arguments")
        if arguments is None:
            raise _ShapeError(f"{tree.data} without arguments")
        return tuple(self.value(child, depth + 1) for child in _subtrees(arguments))

    def list_value(self, tree: Tree[Token], depth: int) -> nodes.ListValue:
        # With maybe_placeholders, an empty list has None children; skip them.
        items = tuple(self.value(child, depth + 1) for child in _subtrees(tree))
        return nodes.ListValue(items=items, span=_tree_span(tree))

    def term_source(
        self, tree: Tree[Token], depth: int
    ) -> nodes.Ref | nodes.String | nodes.ListValue:
        source = _subtree(tree)
        if source is None:
            raise _ShapeError("keywords without a source")
        match source.data:
            case "name":
                return self.ref(_token(source, "NAME"))
            case "string":
                return self.string(_token(source, "STRING"))
            case "list":
                return self.list_value(source, depth + 1)
        raise _ShapeError(f"keywords with a {source.data}")

    def pattern_source(self, tree: Tree[Token]) -> nodes.Ref | nodes.Regex:
        source = _subtree(tree)
        if source is None:
            raise _ShapeError("pattern without a source")
        match source.data:
            case "name":
                return self.ref(_token(source, "NAME"))
            case "regex":
                return self.regex(_token(source, "REGEX"))
        raise _ShapeError(f"pattern with a {source.data}")

    def comparison(self, tree: Tree[Token], span: Span) -> nodes.Comparison:
        subscript = _subtree(tree, "subscript")
        operand = next((c for c in _subtrees(tree) if c.data in ("number", "name")), None)
        if operand is None:
            raise _ShapeError("comparison without an operand")
        window = _subtree(tree, "window")
        return nodes.Comparison(
            subject=self.name(_token(tree, "NAME")),
            key=None if subscript is None else self.name(_token(subscript, "NAME")),
            op=self.comparator(_token(tree, "COMPARATOR")),
            operand=(
                self.number(_token(operand, "NUMBER"))
                if operand.data == "number"
                else self.ref(_token(operand, "NAME"))
            ),
            window=None if window is None else self.window(window),
            span=span,
        )

    def window(self, tree: Tree[Token]) -> nodes.Duration:
        # The duration is `N turns`; `within` belongs to the comparison.
        count = self.number_or_ref(tree)
        turns = _token(tree, "TURNS")
        return nodes.Duration(turns=count, span=Span(count.span.start, _pos(turns.end_pos)))

    # ------------------------------------------------------------ tokens

    def name(self, token: Token) -> nodes.Name:
        return nodes.Name(text=str(token), span=_token_span(token))

    def ref(self, token: Token) -> nodes.Ref:
        span = _token_span(token)
        return nodes.Ref(name=nodes.Name(text=str(token), span=span), span=span)

    def number_or_ref(self, tree: Tree[Token]) -> nodes.Number | nodes.Ref:
        """The NUMBER, or the NAME of a parameter, that ``tree`` holds."""
        numbers = _tokens(tree, "NUMBER")
        if numbers:
            return self.number(numbers[0])
        return self.ref(_token(tree, "NAME"))

    def comparator(self, token: Token) -> nodes.Comparator:
        op = _COMPARATORS.get(str(token))
        if op is None:
            raise _ShapeError(f"unknown comparator {token!r}")
        return op

    def number(self, token: Token) -> nodes.Number:
        value, is_integer = number_value(str(token))
        return nodes.Number(value=value, is_integer=is_integer, span=_token_span(token))

    def regex(self, token: Token) -> nodes.Regex:
        pattern, flags = decode_regex(str(token))
        return nodes.Regex(pattern=pattern, flags=flags, span=_token_span(token))

    def string(self, token: Token) -> nodes.String:
        span = _token_span(token)
        decoded = decode_string(str(token), span.start)
        for problem in decoded.problems:
            self.sink.error(
                "PL105",
                problem.message,
                self.source.path,
                problem.span,
                label=problem.label,
                help=problem.help,
            )
        return nodes.String(value=decoded.value, span=span)
