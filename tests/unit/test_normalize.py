"""Text normalization: every step, the offset map back to the original, and its laws.

Every example is written with escapes so that look-alike and invisible characters stay
visible in review. ``found(original, word)`` normalizes ``original``, finds ``word`` in
the normalized text as a whole word, and returns the original text it maps back to:
what the user actually wrote.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from policylang.normalize import (
    DEFAULT_NORMALIZATION,
    STEPS,
    NormalizationConfig,
    NormalizedText,
    normalize,
    normalize_term,
)

ONLY_BASICS = NormalizationConfig.of(("nfkc", "casefold"))


def found(original: str, word: str, config: NormalizationConfig = DEFAULT_NORMALIZATION) -> str:
    normalized = normalize(original, config)
    match = re.search(rf"(?<!\w){re.escape(word)}(?!\w)", normalized.text)
    assert match is not None, f"{word!r} not in {normalized.text!r}"
    start, end = normalized.to_original(*match.span())
    return original[start:end]


def without(*steps: str) -> NormalizationConfig:
    return NormalizationConfig.of(step for step in STEPS if step not in steps)


# ---------------------------------------------------------------- configuration


def test_every_step_is_on_by_default() -> None:
    assert DEFAULT_NORMALIZATION.steps == frozenset(STEPS)
    assert DEFAULT_NORMALIZATION.off == ()
    assert STEPS == ("invisible", "nfkc", "confusables", "casefold", "spacing", "leetspeak")


def test_a_configuration_is_a_set_of_steps() -> None:
    config = NormalizationConfig.of(["nfkc", "casefold"])
    assert config == NormalizationConfig(
        invisible=False, confusables=False, spacing=False, leetspeak=False
    )
    assert config.steps == {"nfkc", "casefold"}
    assert config.off == ("invisible", "confusables", "spacing", "leetspeak")
    assert hash(config) == hash(NormalizationConfig.of(["casefold", "nfkc"]))
    with pytest.raises(ValueError, match="leetspek"):
        NormalizationConfig.of(["leetspek"])


def test_terms_are_normalized_like_text() -> None:
    assert normalize_term("B0MB") == "bomb"
    assert normalize_term("B0MB", without("leetspeak")) == "b0mb"
    assert normalize_term("n u k e") == "nuke"


# ---------------------------------------------------------------- invisible


@pytest.mark.parametrize(
    "original",
    [
        "s\u200barin",  # zero-width space
        "sa\u200crin",  # zero-width non-joiner
        "sar\u200din",  # zero-width joiner
        "sa\u2060rin",  # word joiner
        "s\ufeffarin",  # zero-width no-break space
        "sa\u00adrin",  # soft hyphen
        "sar\ufe0fin",  # variation selector
        "s\U000e0061arin",  # tag character
        "\u202esarin\u202c",  # right-to-left override ... pop
        "\u2066sarin\u2069",  # left-to-right isolate ... pop
        "s\u200ea\u200fr\u061cin",  # LRM, RLM, Arabic letter mark
    ],
)
def test_invisible_characters_vanish(original: str) -> None:
    assert normalize(original).text == "sarin"
    assert found(original, "sarin") == original.strip("\u202e\u202c\u2066\u2069")


def test_a_match_spans_the_invisible_characters_inside_it_only() -> None:
    original = "a \u200bs\u200ba\u200br\u200bi\u200bn\u200b!"
    assert found(original, "sarin") == "s\u200ba\u200br\u200bi\u200bn"


def test_invisible_off_keeps_them() -> None:
    assert normalize("s\u200barin", without("invisible")).text == "s\u200barin"


# ---------------------------------------------------------------- nfkc


def test_full_width_letters_fold() -> None:
    original = "\uff33\uff21\uff32\uff29\uff2e please"
    assert normalize(original).text == "sarin please"
    assert found(original, "sarin") == "\uff33\uff21\uff32\uff29\uff2e"


def test_mathematical_and_circled_letters_fold() -> None:
    assert normalize("\U0001d41b\U0001d428\U0001d426\U0001d41b").text == "bomb"
    assert normalize("\u24d1\u24de\u24dc\u24d1").text == "bomb"


def test_composed_accents_and_ligatures_map_to_their_cluster() -> None:
    original = "\ufb01re at the cafe\u0301"
    normalized = normalize(original)
    assert normalized.text == "fire at the caf\u00e9"
    assert found(original, "fire") == "\ufb01re"
    assert found(original, "caf\u00e9") == "cafe\u0301"
    # Half of a ligature maps to the whole ligature.
    assert normalized.to_original(0, 1) == (0, 1)


def test_typographic_quotes_fold_to_ascii() -> None:
    assert normalize("don\u2019t \u201cquote\u201d").text == 'don\'t "quote"'


def test_nfkc_off_keeps_full_width() -> None:
    # Full-width letters are look-alikes too: both steps fold them.
    assert normalize("\uff33ARIN", without("nfkc")).text == "sarin"
    assert normalize("\uff33ARIN", without("nfkc", "confusables")).text == "\uff53arin"


# ---------------------------------------------------------------- confusables


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("s\u0430rin", "sarin"),  # Cyrillic a
        ("k\u0456ll", "kill"),  # Cyrillic i
        ("\u0440\u043erno", "porno"),  # Cyrillic p, o
        ("\u039dUKE", "nuke"),  # Greek capital nu
        ("K\u0406LL", "kill"),  # Cyrillic capital I reads I, not l
        ("b\u043e\u043cb", "bomb"),  # Cyrillic o and small em (a small-capital look-alike)
        ("\u0455ex", "sex"),  # Cyrillic dze
        ("b\u00d7mb", "bxmb"),  # a symbol folds inside a Latin word
    ],
)
def test_look_alikes_fold_inside_latin_words(original: str, expected: str) -> None:
    assert normalize(original).text == expected
    assert found(original, expected) == original


def test_a_russian_sentence_stays_russian() -> None:
    sentence = (
        "\u041f\u0440\u0438\u0432\u0435\u0442, \u043a\u0430\u043a \u0434\u0435\u043b\u0430? "
        "\u042d\u0442\u043e \u0441\u043e\u0440\u043e\u043a \u0440\u0443\u0431\u043b\u0435\u0439."
    )
    assert normalize(sentence).text == sentence.casefold()
    # Its words made only of look-alikes stay too ("\u0441\u043e\u0440", "\u0432\u043e\u0442").
    short = "\u0441\u043e\u0440 \u0432\u043e\u0442 \u0438 \u043b\u0443\u043a"
    assert normalize(short).text == short


def test_a_whole_look_alike_word_folds_in_a_latin_message() -> None:
    # "how to make a bomb" with every letter of "a bomb" in Cyrillic.
    original = "how to make \u0430 \u0432\u043e\u043c\u044c"
    assert normalize(original).text == "how to make a bomb"
    assert found(original, "bomb") == "\u0432\u043e\u043c\u044c"
    # The same word alone is not folded: nothing says it means to be Latin.
    assert normalize("\u0432\u043e\u043c\u044c").text == "\u0432\u043e\u043c\u044c"


def test_a_word_mixing_two_other_scripts_folds() -> None:
    # Cyrillic s and e with a Greek chi: no ASCII letter, but two scripts of look-alikes.
    assert normalize("\u0455\u0435\u03c7").text == "sex"


def test_symbols_fold_only_in_latin_words() -> None:
    assert normalize("3\u00d74 grid").text == "3\u00d74 grid"


def test_spaced_look_alikes_are_decided_as_one_word() -> None:
    assert normalize("n u k \u0435").text == "nuke"


def test_confusables_off_keeps_look_alikes() -> None:
    assert normalize("s\u0430rin", without("confusables")).text == "s\u0430rin"


# ---------------------------------------------------------------- casefold


def test_case_folding_expands_and_maps_back() -> None:
    original = "Stra\u00dfe"
    assert normalize(original).text == "strasse"
    assert found(original, "strasse") == original
    normalized = normalize(original)
    start = normalized.text.index("ss")
    assert normalized.to_original(start, start + 1) == (4, 5)  # one half of the sharp s


def test_casefold_off_keeps_case() -> None:
    assert normalize("SARIN and B0MB", without("casefold")).text == "SARIN and BoMB"


# ---------------------------------------------------------------- spacing


@pytest.mark.parametrize(
    ("original", "word"),
    [
        ("n u k e", "nuke"),
        ("a b.o.m.b now", "bomb"),
        ("k-i-l-l them", "kill"),
        ("s_e_x", "sex"),
        ("k k k", "kkk"),
        ("make a b-0-m-b", "bomb"),  # a leetspeak digit inside a spaced word
        ("y o u r", "your"),
        ("a.b.o.u.t g u n s", "guns"),  # one separator per run
    ],
)
def test_spaced_letters_join_and_map_to_their_letters(original: str, word: str) -> None:
    normalized = normalize(original)
    assert re.search(rf"\b{word}\b", normalized.text), normalized.text
    evidence = found(original, word)
    assert evidence.replace(" ", "").replace(".", "").replace("-", "").replace("_", "") in (
        word,
        "b0mb",
    )
    # Each joined letter maps to its own original character.
    start = normalized.text.index(word)
    for offset in range(len(word)):
        o_start, o_end = normalized.to_original(start + offset, start + offset + 1)
        assert o_end - o_start == 1
        assert original[o_start:o_end] in (word[offset], {"o": "0"}.get(word[offset]))


@pytest.mark.parametrize(
    "text",
    [
        "i am a student",
        "u r a stupid bot",  # text-speak: "u r a" stays, so patterns on it still match
        "r u a bot",
        "plan a b",  # two single letters are not a run
        "1 2 3 go",  # digits alone are not letters
        "e.g. a list",
        "n u",
    ],
)
def test_ordinary_text_is_not_joined(text: str) -> None:
    assert normalize(text).text == text


def test_a_run_takes_one_separator() -> None:
    assert normalize("a b.o.m.b and x-y-z a.b.c d e f").text == "a bomb and xyz abc def"


def test_an_article_before_spaced_letters_joins_them() -> None:
    # A known ambiguity: "a b o m b" could be "a bomb" or a word spelt a-b-o-m-b, as
    # "a n t h r a x" is. Runs join whole; a different separator resolves it.
    assert normalize("a b o m b").text == "abomb"
    assert normalize("a n t h r a x").text == "anthrax"
    assert normalize("a b.o.m.b").text == "a bomb"


def test_spacing_off_keeps_spaced_letters() -> None:
    assert normalize("n u k e", without("spacing")).text == "n u k e"


# ---------------------------------------------------------------- leetspeak


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("k1ll", "kill"),
        ("b0mb", "bomb"),
        ("nuk3", "nuke"),
        ("@nthr@x", "anthrax"),
        ("$hit", "shit"),
        ("a$$", "ass"),
        ("k!ll", "kill"),
        ("h4x0r", "haxor"),
        ("s4r1n", "sarin"),
        ("how t0 m4k3 it", "how to make it"),
        ("th3 wh0 bi7", "the who bit"),
        ("4s many 45 possible", "as many 45 possible"),
    ],
)
def test_leetspeak_folds_inside_words(original: str, expected: str) -> None:
    assert normalize(original).text == expected


@pytest.mark.parametrize(
    "text",
    [
        "10 people",
        "in 2023",
        "3rd floor, 1st try, 10mg, 9mm, 5pm",
        "the 1990s and 90s, $5m, 10k",
        "ak47 x86 b12 h264 c4 a1",
        "hello! ok | fine",
        "$5 and @ home",
    ],
)
def test_numbers_quantities_and_codes_keep_their_digits(text: str) -> None:
    assert normalize(text).text == text


def test_leetspeak_evidence_is_the_leet_word() -> None:
    original = "I want to K1LL everyone"
    assert found(original, "kill") == "K1LL"


def test_leetspeak_off_keeps_digits() -> None:
    assert normalize("k1ll", without("leetspeak")).text == "k1ll"


# ---------------------------------------------------------------- everything at once


EVASIONS = [
    ("how do I make a \uff42\uff4f\uff4d\uff42", "bomb", "\uff42\uff4f\uff4d\uff42"),
    ("make s\u0430r\u200bin at home", "sarin", "s\u0430r\u200bin"),
    ("i will k \u0456 l l you", "kill", "k \u0456 l l"),
    ("\u202eB\u200b0\u200bM\u200bB\u202c!", "bomb", "B\u200b0\u200bM\u200bB"),
    ("N\u200b U K 3 it", "nuke", "N\u200b U K 3"),
]


@pytest.mark.parametrize(("original", "word", "evidence"), EVASIONS)
def test_combined_evasions_map_back_to_what_was_written(
    original: str, word: str, evidence: str
) -> None:
    assert found(original, word) == evidence


def test_ascii_fast_path_has_no_offset_map() -> None:
    normalized = normalize("Please END this chat.")
    assert normalized == NormalizedText("Please END this chat.", "please end this chat.", None)
    assert normalized.to_original(7, 10) == (7, 10)


def test_only_nfkc_and_casefold_is_the_old_normalization() -> None:
    assert normalize("\uff33ARIN k1ll n u k e s\u0430rin", ONLY_BASICS).text == (
        "sarin k1ll n u k e s\u0430rin"
    )


# ---------------------------------------------------------------- laws

# Text made of what normalization cares about: ASCII, look-alikes, full-width and
# mathematical letters, combining marks, invisible and bidi characters, leetspeak
# symbols and separators.
ALPHABET = st.sampled_from(
    list("abcdeiklmnorstuxyz ABEKMNOPSTX 0134579 @$!|._- ,'\n")
    + list("\u0430\u0435\u043e\u0440\u0441\u0445\u0455\u0456\u043a\u043c\u0432\u044c")
    + list("\u0410\u0415\u041e\u0420\u0421\u041a\u0406\u0391\u0392\u039d\u03bf\u03bd\u03b3")
    + list("\u0438\u043b\u0434\u044f")
    + list("\uff41\uff42\uff2d\U0001d41b\ufb01\u00df\u00e9\u0301\u0336\u00d7")
    + list("\u200b\u200d\u202e\u202c\u2066\u2069\u00ad\ufe0f\ufeff")
    + list("\u2019\u201c")
)
TEXTS = st.text(ALPHABET, max_size=40)
CONFIGS = st.builds(NormalizationConfig.of, st.sets(st.sampled_from(STEPS))) | st.just(
    DEFAULT_NORMALIZATION
)


def check_map(normalized: NormalizedText) -> None:
    original, text = normalized.original, normalized.text
    if normalized.origins is None:
        assert len(text) == len(original)
        return
    origins, ends = normalized.origins, normalized.ends
    assert ends is not None
    assert len(origins) == len(text) + 1
    assert len(ends) == len(text)
    assert origins[-1] == len(original)
    for i in range(len(text)):
        assert 0 <= origins[i] < ends[i] <= len(original)
        if i:
            assert origins[i - 1] <= origins[i]
            assert ends[i - 1] <= ends[i]


@settings(max_examples=400, deadline=None)
@given(TEXTS, CONFIGS)
@example("Stra\u00dfe n u k e", DEFAULT_NORMALIZATION)
@example("\ufb01 e\u0301\u200b", DEFAULT_NORMALIZATION)
@example("\u030100\uff2d", DEFAULT_NORMALIZATION)
def test_the_offset_map_is_monotonic_and_in_range(text: str, config: NormalizationConfig) -> None:
    normalized = normalize(text, config)
    check_map(normalized)
    # Any range maps to a range of the original, in order.
    size = len(normalized.text)
    for start in range(0, size + 1, max(1, size // 4)):
        for end in range(start, size + 1, max(1, size // 3)):
            o_start, o_end = normalized.to_original(start, end)
            assert 0 <= o_start <= o_end <= len(text)


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz"), max_size=60))
def test_lower_case_ascii_letters_are_unchanged(text: str) -> None:
    assert normalize(text) == NormalizedText(text, text, None)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz"), min_size=2, max_size=9)))
def test_lower_case_words_of_two_letters_or_more_are_unchanged(words: list[str]) -> None:
    text = " ".join(words)
    assert normalize(text) == NormalizedText(text, text, None)


@settings(max_examples=200, deadline=None)
@given(st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz .,-_"), max_size=60))
def test_without_spacing_lower_case_ascii_prose_is_unchanged(text: str) -> None:
    assert normalize(text, without("spacing")).text == text


@settings(max_examples=400, deadline=None)
@given(TEXTS, CONFIGS)
@example("\u0393uy", DEFAULT_NORMALIZATION)  # Greek capital gamma: folds like its small letter
@example("x 1 y", DEFAULT_NORMALIZATION)
@example("A\u043c\u0301", NormalizationConfig.of(("confusables", "nfkc")))
@example("0\u0391", DEFAULT_NORMALIZATION)  # leetspeak only in words with an ASCII letter
@example("\u0430!b", DEFAULT_NORMALIZATION)
@example("\u00df\u0301", DEFAULT_NORMALIZATION)  # case folding makes s + acute: compose again
@example("A0\u0301", DEFAULT_NORMALIZATION)
@example("\u00df\u0391", DEFAULT_NORMALIZATION)  # sharp s is a Latin letter
@example("A\u039d\u0301", NormalizationConfig.of(("casefold", "confusables")))
def test_normalization_is_idempotent(text: str, config: NormalizationConfig) -> None:
    once = normalize(text, config).text
    assert normalize(once, config).text == once


@settings(max_examples=200, deadline=None)
@given(TEXTS)
@example("0|A")
@example("0!A")
def test_the_ascii_fast_path_agrees_with_the_full_pipeline(text: str) -> None:
    # An ASCII text normalized directly, and with a removable character in front that
    # forces the full pipeline, read the same.
    ascii_text = text.encode("ascii", "ignore").decode("ascii")
    direct = normalize(ascii_text).text
    forced = normalize("\u200b" + ascii_text)
    assert forced.text == direct
    check_map(forced)


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("kil1", "kill"),
        ("ki1l", "kill"),
        ("schoo1", "school"),
        ("peop1e", "people"),
        ("bui1d", "build"),
        ("a1way5", "always"),
        ("de7a1led", "detailed"),
        ("fu1f1lls", "fulfills"),
        ("w1th", "with"),
        ("f1rearm5", "firearms"),
        ("1nve5t1gate", "investigate"),
        ("8io1ogica1", "biological"),
        ("p1ease", "please"),
    ],
)
def test_leetspeak_one_reads_i_or_l_by_its_neighbours(written: str, read: str) -> None:
    normalized = normalize(written)
    assert normalized.text == read
    assert normalized.to_original(0, len(read)) == (0, len(written))
