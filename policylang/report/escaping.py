"""HTML escaping for text that comes from policies, transcripts and labels.

Besides the usual ``& < > " '`` escapes, ``://`` and attribute-like ``src=`` or
``href=`` are written with character references (``&#58;//``, ``src&#61;``). A
browser shows exactly the same text, but the page source then holds no URL or
resource attribute that did not come from the template, which keeps the report
obviously free of external resources for anyone (or any scanner) reading it.
"""

from __future__ import annotations

import re
from typing import Final

from markupsafe import Markup, escape

__all__ = ["defang", "escape_text"]

_URL: Final = re.compile(r"://")
_ATTRIBUTE: Final = re.compile(r"(?i)\b(src|href|srcset|action)(\s*)=")


def defang(escaped: str) -> Markup:
    """Rewrite ``://`` and ``src=``-like text in already-escaped text (not in markup)."""
    text = _URL.sub("&#58;//", str(escaped))
    return Markup(_ATTRIBUTE.sub(r"\1\2&#61;", text))


def escape_text(value: object) -> Markup:
    """``value`` as text that is safe in HTML element content and quoted attributes."""
    return defang(escape(str(value)))
