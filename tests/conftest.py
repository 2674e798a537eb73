"""Shared pytest configuration: the ``--update-goldens`` option, and no user cache."""

from __future__ import annotations

import os

import pytest

# Tests run hermetic: nothing is read from or written to the user's cache directory
# (subprocesses inherit this). The cache's own tests turn it back on in a temporary home.
os.environ["POLICYLANG_NO_CACHE"] = "1"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="Rewrite golden files from the current output instead of comparing.",
    )


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    """Whether golden files should be rewritten (``pytest --update-goldens``)."""
    return bool(request.config.getoption("--update-goldens"))
