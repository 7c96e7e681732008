"""SMS length rules: what the template editor shows and where the outbox cuts (desktop/domain/sms_text.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from desktop.domain.sms_text import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    fit_to_segments,
    is_gsm7,
    measure,
)


def test_the_default_alphabet_has_its_127_printable_septets_and_9_extensions() -> None:
    # 128 code points, one of which is the escape to the extension table (not a character of its own).
    assert len(GSM7_BASIC) == 127
    assert len(GSM7_EXTENSION) == 10  # the nine printable extensions and form feed
    assert not GSM7_BASIC & GSM7_EXTENSION


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments", "remaining"),
    [
        ("", "GSM-7", 0, 0, 160),
        ("a" * 160, "GSM-7", 160, 1, 0),
        ("a" * 161, "GSM-7", 161, 2, 153 * 2 - 161),
        ("a" * 306, "GSM-7", 306, 2, 0),
        ("a" * 307, "GSM-7", 307, 3, 153 * 3 - 307),
        ("€" * 80, "GSM-7", 160, 1, 0),  # an extension character costs two septets
        ("€" * 81, "GSM-7", 162, 2, 153 - 10),  # 76 euros fill 152 septets; the 77th opens segment 2
        ("Zoë" * 10, "UCS-2", 30, 1, 40),  # ë (unlike ä, ö, ü and é) is not in GSM-7: all of it goes as UCS-2
        ("é" * 70, "GSM-7", 70, 1, 90),
        ("李" * 70, "UCS-2", 70, 1, 0),
        ("李" * 71, "UCS-2", 71, 2, 67 * 2 - 71),
        ("😀" * 35, "UCS-2", 70, 1, 0),  # outside the BMP: a surrogate pair, two units
    ],
)
def test_measure_counts_like_a_carrier(text: str, encoding: str, units: int, segments: int, remaining: int) -> None:
    length = measure(text)
    assert (length.encoding, length.units, length.segments, length.remaining) == (encoding, units, segments, remaining)


def test_an_extension_character_never_straddles_two_segments() -> None:
    # 152 septets then an extension character: 154 would not fit 153, so the euro opens segment 2 whole.
    text = "a" * 152 + "€" + "a" * 10
    length = measure(text)
    assert length.segments == 2
    assert length.remaining == 153 - 12


def test_a_surrogate_pair_is_never_split_between_segments() -> None:
    text = "李" * 66 + "😀" + "李" * 10  # 66 + 2 would exceed 67: the emoji starts segment 2
    length = measure(text)
    assert length.encoding == "UCS-2"
    assert length.segments == 2
    assert length.remaining == 67 - 12


def test_fit_cuts_at_a_word_boundary_and_says_so() -> None:
    words = "Your book is ready for pickup at the Main Library until Friday 12 December. " * 5
    fitted = fit_to_segments(words, 1)
    assert fitted.cut
    assert fitted.length.segments == 1
    assert words.startswith(fitted.text)
    assert words[len(fitted.text)] == " "  # the cut falls before a space: no word is broken
    assert not fitted.text.endswith(" ")


def test_fit_leaves_a_text_that_fits_alone() -> None:
    fitted = fit_to_segments("Short notice.", 1)
    assert fitted == fit_to_segments("Short notice.", 3)
    assert not fitted.cut
    assert fitted.text == "Short notice."


def test_a_single_overlong_word_is_cut_inside() -> None:
    fitted = fit_to_segments("x" * 500, 2)
    assert fitted.cut
    assert fitted.text == "x" * 306


def test_no_segments_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one segment"):
        fit_to_segments("anything", 0)


texts = st.text(
    alphabet=st.sampled_from([*sorted(GSM7_BASIC | GSM7_EXTENSION), "李", "ë", "😀", " ", " ", "\n"]),
    max_size=800,
)


@given(texts, st.integers(min_value=1, max_value=6))
def test_fit_never_exceeds_the_limit_and_keeps_a_prefix(text: str, max_segments: int) -> None:
    fitted = fit_to_segments(text, max_segments)
    assert fitted.length.segments <= max_segments
    assert text.startswith(fitted.text)
    assert fitted.cut == (fitted.text != text)
    if not fitted.cut:
        assert measure(text).segments <= max_segments


@given(texts)
def test_segments_grow_with_the_text(text: str) -> None:
    # Adding a character never makes a message shorter: the editor's counter and the bisection rely on it.
    previous = 0
    for end in range(0, len(text) + 1, max(1, len(text) // 20)):
        segments = measure(text[:end]).segments
        assert segments >= previous
        previous = segments
    assert is_gsm7(text) == (measure(text).encoding == "GSM-7")
