"""did_you_mean: thresholds, clear winners and ties."""

from __future__ import annotations

import pytest

from policylang.suggest import did_you_mean


@pytest.mark.parametrize(
    ("name", "candidates", "expected"),
    [
        ("self_harn", ["self_harm", "crisis_support", "violence"], "self_harm"),
        ("critcal", ["low", "medium", "high", "critical"], "critical"),
        ("categroy", ["category", "redirect", "termination"], "category"),
        ("redirct", ["redirect", "termination"], "redirect"),
    ],
)
def test_typos_get_a_suggestion(name: str, candidates: list[str], expected: str) -> None:
    assert did_you_mean(name, candidates) == expected


@pytest.mark.parametrize(
    ("name", "candidates"),
    [
        ("foo", ["bar", "baz"]),
        ("violence", ["self_harm", "crisis_support"]),
        ("x", ["y"]),
        ("anything", []),
    ],
)
def test_unrelated_names_get_nothing(name: str, candidates: list[str]) -> None:
    assert did_you_mean(name, candidates) is None


def test_tie_between_top_two_gives_nothing() -> None:
    # "cat" is one edit from both and scores the same against each.
    assert did_you_mean("cat", ["bat", "car"]) is None


def test_duplicates_are_not_a_tie() -> None:
    assert did_you_mean("critcal", ["critical", "critical"]) == "critical"


def test_best_of_several_close_candidates_wins() -> None:
    assert did_you_mean("self_harn", ["self_harm", "self_hate"]) == "self_harm"


def test_name_itself_is_never_suggested() -> None:
    assert did_you_mean("category", ["category"]) is None


def test_case_only_difference_wins() -> None:
    assert did_you_mean("Critical", ["critical", "critics"]) == "critical"


def test_two_case_variants_fall_back_to_similarity() -> None:
    # Neither variant wins outright, and both score the same, so nothing is suggested.
    assert did_you_mean("SELF_harm", ["self_harm", "SELF_HARM"]) is None
    assert did_you_mean("SELF_harm", ["self_harm", "SELF_HARM", "violence"]) is None


def test_accepts_any_iterable_and_ignores_candidate_order() -> None:
    candidates = ["critical", "crisis", "high", "critic"]
    assert did_you_mean("critcal", iter(candidates)) == "critical"
    assert did_you_mean("critcal", (c for c in reversed(candidates))) == "critical"
