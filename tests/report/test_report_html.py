"""The HTML report: well-formed, self-contained, escaped, with evidence highlighted."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from policylang.report import Report, build_report, highlight, render_html
from policylang.runtime import Policy

FIXTURES = Path(__file__).parent / "fixtures"

VOID = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
    "track", "wbr",
}  # fmt: skip
# Elements that may close implicitly; the template closes all of them anyway.
FORBIDDEN_TAGS = {"script", "link", "img", "iframe", "object", "embed", "image", "use", "audio",
                  "video", "source", "base", "form"}  # fmt: skip
RESOURCE_ATTRIBUTES = {"src", "srcset", "data", "poster", "action", "formaction", "xlink:href"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    text: str = ""
    children: list[Element] = field(default_factory=list)

    def iter(self) -> list[Element]:
        found = [self]
        for child in self.children:
            found.extend(child.iter())
        return found

    def all_text(self) -> str:
        return self.text + "".join(child.all_text() for child in self.children)


class TreeBuilder(HTMLParser):
    """A strict tree builder: every non-void element must be closed, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]
        self.doctype: str | None = None
        self.errors: list[str] = []

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs))
        if len(dict(attrs)) != len(attrs):
            self.errors.append(f"duplicate attribute on <{tag}>")
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # Self-closing syntax is fine for SVG elements.
        self.stack[-1].children.append(Element(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            self.errors.append(f"end tag for void element </{tag}>")
            return
        open_tag = self.stack[-1].tag
        if open_tag != tag:
            self.errors.append(f"</{tag}> closes <{open_tag}> at {self.getpos()}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].text += data


def parse(html: str) -> TreeBuilder:
    builder = TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder


@pytest.fixture(scope="module")
def report(policy: Policy) -> Report:
    # Enough examples that every conversation, the hostile one too, is shown.
    return build_report(
        policy,
        [str(FIXTURES / "corpus.jsonl"), str(FIXTURES / "benign.jsonl")],
        labels=["auto"],
        benign=["benign"],
        max_end_rates={"benign": 0.5},
        examples=20,
    )


@pytest.fixture(scope="module")
def html(report: Report) -> str:
    return render_html(report)


@pytest.fixture(scope="module")
def tree(html: str) -> TreeBuilder:
    return parse(html)


def elements(tree: TreeBuilder, tag: str) -> list[Element]:
    return [element for element in tree.root.iter() if element.tag == tag]


# ---------------------------------------------------------------- structure


def test_well_formed(tree: TreeBuilder) -> None:
    assert tree.errors == []
    assert [element.tag for element in tree.stack] == ["#document"], "unclosed elements"
    assert tree.doctype is not None and tree.doctype.lower() == "doctype html"
    (document,) = [child for child in tree.root.children if child.tag == "html"]
    assert document.attrs.get("lang") == "en"
    head, body = document.children
    assert (head.tag, body.tag) == ("head", "body")
    assert [child.text for child in head.children if child.tag == "title"] == [
        "policylang report: report_fixture 0.1.0"
    ]
    assert any(child.tag == "main" for child in body.children)


def test_ids_are_unique_and_links_resolve(tree: TreeBuilder) -> None:
    ids = [element.attrs["id"] for element in tree.root.iter() if element.attrs.get("id")]
    assert len(ids) == len(set(ids))
    hrefs = [str(element.attrs["href"]) for element in elements(tree, "a")]
    assert hrefs
    for href in hrefs:
        assert href.startswith("#"), href
        assert href[1:] in ids, href


def test_sections(tree: TreeBuilder, report: Report) -> None:
    sections = {element.attrs.get("id") for element in elements(tree, "section")}
    assert {"overview", "agreement", "definitions", "corpus-1", "corpus-2"} <= sections
    headings = [element.all_text() for element in elements(tree, "h2")]
    assert headings[:2] == ["Overview", "Agreement with gold labels"]
    assert [item.name for item in report.corpora] == ["corpus", "benign"]
    assert "corpus" in headings and "benign" in headings


# ---------------------------------------------------------------- self-contained


def test_no_external_resources(html: str, tree: TreeBuilder) -> None:
    assert "http://" not in html
    assert "https://" not in html
    assert "src=" not in html.lower()
    assert "url(" not in html
    assert "@import" not in html
    for element in tree.root.iter():
        assert element.tag not in FORBIDDEN_TAGS, element.tag
        assert not RESOURCE_ATTRIBUTES & set(element.attrs), element
        assert not any(name.startswith("on") for name in element.attrs), element
    (style,) = elements(tree, "style")
    assert "mark" in style.text


def test_charts_are_inline_svg_with_axes(tree: TreeBuilder) -> None:
    charts = elements(tree, "svg")
    assert len(charts) >= 3  # rates overview, outcome bars, end histograms
    texts = [chart.all_text() for chart in charts]
    assert any("message index of the end (0-based)" in text for text in texts)
    assert any("user turn of the end (1 = first user message)" in text for text in texts)
    histogram = next(chart for chart in charts if "message index of the end" in chart.all_text())
    # Axis ticks include 0 and the bar for index 6 is labelled with its count, 4.
    labels = [element.text for element in histogram.iter() if element.tag == "text"]
    assert "0" in labels and "6" in labels and "4" in labels
    assert any(element.tag == "rect" for element in histogram.iter())


# ---------------------------------------------------------------- escaping


def test_hostile_text_is_escaped(html: str, tree: TreeBuilder) -> None:
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src&#61;" in html
    texts = [element.text for element in elements(tree, "div") if "alert(1)" in element.text]
    assert any("<script>alert(1)</script> & <img src=" in text for text in texts)
    # The URL in the text shows as text, with its "://" written as a character reference.
    assert "evil.example" in html
    assert any("https://evil.example/x.png" in element.all_text() for element in tree.root.iter())


def test_evidence_is_highlighted(tree: TreeBuilder) -> None:
    (hostile,) = [
        element for element in tree.root.iter() if element.attrs.get("id") == "ex-corpus-hostile"
    ]
    marks = [element for element in hostile.iter() if element.tag == "mark"]
    assert "Please end this chat" in [mark.all_text() for mark in marks]
    highlighted = next(mark for mark in marks if mark.attrs.get("title"))
    assert highlighted.attrs["title"] == 'signal asks_to_end: keywords ["please end this chat"]'


def test_id_lists_link_to_examples(tree: TreeBuilder) -> None:
    links = {element.all_text(): element.attrs["href"] for element in elements(tree, "a")}
    assert links["late"] == "#ex-corpus-late"
    assert links["premature"] == "#ex-corpus-premature"
    assert links["protection-failure"] == "#ex-corpus-protection-failure"
    assert links["benign-2"] == "#ex-benign-benign-2"
    # An example is a <details> element with that id.
    (late,) = [e for e in elements(tree, "details") if e.attrs.get("id") == "ex-corpus-late"]
    assert "gold end: late" in late.all_text()


def test_invalid_records_are_listed(tree: TreeBuilder) -> None:
    codes = [element.all_text() for element in elements(tree, "code")]
    assert any(re.search(r"corpus\.jsonl:12:\d+: error\[PL801\]", text) for text in codes)


# ---------------------------------------------------------------- highlight()


def test_highlight_escapes_and_marks() -> None:
    assert highlight("a <b> c", [(2, 5, "tag")]) == 'a <mark title="tag">&lt;b&gt;</mark> c'
    assert highlight("x & y", []) == "x &amp; y"


def test_highlight_overlapping_spans_never_nest() -> None:
    out = str(highlight("abcdefgh", [(1, 5, "one"), (3, 7, "two")]))
    assert out == (
        'a<mark title="one">bc</mark><mark class="overlap" title="one; two">de</mark>'
        '<mark title="two">fg</mark>h'
    )
    tree = parse(f"<p>{out}</p>")
    assert tree.errors == []
    assert all(
        not any(child.tag == "mark" for child in mark.children) for mark in elements(tree, "mark")
    )


def test_highlight_nested_and_identical_spans() -> None:
    out = str(highlight("abcdef", [(0, 6, "outer"), (2, 4, "inner"), (2, 4, "inner")]))
    assert out == (
        '<mark title="outer">ab</mark><mark class="overlap" title="outer; inner">cd</mark>'
        '<mark title="outer">ef</mark>'
    )


def test_highlight_ignores_spans_outside_the_text() -> None:
    assert highlight("abc", [(2, 9, "x"), (-1, 1, "y"), (2, 2, "z")]) == "abc"


def test_highlight_offsets_are_code_points() -> None:
    text = "\U0001f600 é bomb"
    start = text.index("bomb")
    assert highlight(text, [(start, start + 4, "k")]) == '\U0001f600 é <mark title="k">bomb</mark>'


def test_highlight_escapes_titles_and_defangs() -> None:
    out = str(highlight('see https://x.example/"a"', [(4, 9, '"><script>')]))
    assert "<script>" not in out
    assert "https://" not in out
    assert parse(out).errors == []
