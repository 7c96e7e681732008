"""How long an SMS is: GSM-7 or UCS-2, segments, and cutting a text to a maximum number of segments.

Why here: the template editor shows the count while staff type and the outbox cuts the text before sending;
both must agree with what a carrier bills, so the rule lives once, free of Qt and of any transport.

The rules (3GPP TS 23.038 and TS 23.040): a message whose every character is in the GSM 7-bit default alphabet
or its extension table is sent as GSM-7 — 160 septets in one segment, 153 per segment once concatenated, and an
extension character (``{ } [ ] \\ ~ ^ | €`` and form feed) costs two septets and never straddles two segments.
Any other character makes the whole message UCS-2: 70 UTF-16 code units in one segment, 67 per segment when
concatenated, a character outside the Basic Multilingual Plane (most emoji) costs two units and its pair is not
split between segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: The GSM 03.38 default alphabet (one septet each), as Unicode characters.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: The extension table: each is sent as ESC + one septet.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

#: Texts longer than this are cut when sent: a notice that needs more than three messages is a letter, not a text.
DEFAULT_MAX_SEGMENTS = 3

GSM7_SINGLE = 160
GSM7_MULTI = 153
UCS2_SINGLE = 70
UCS2_MULTI = 67

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True)
class SmsLength:
    """What the editor shows under the SMS text: encoding, size in units, segments and room left in the last one.

    Attributes:
        encoding: "GSM-7" or "UCS-2".
        units: septets (GSM-7) or UTF-16 code units (UCS-2) the text takes.
        segments: how many messages the carrier sends and bills (0 for an empty text).
        remaining: units still free in the last segment before another one starts.
    """

    encoding: Encoding
    units: int
    segments: int
    remaining: int


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` can be sent in the GSM 7-bit alphabet (with its extension table)."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _char_units(ch: str, encoding: Encoding) -> int:
    if encoding == "GSM-7":
        return 2 if ch in GSM7_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1


def _segment_layout(text: str, encoding: Encoding, per_segment: int) -> list[int]:
    """Units used in each segment when ``text`` is split without cutting a character's units apart."""
    used = [0]
    for ch in text:
        units = _char_units(ch, encoding)
        if used[-1] + units > per_segment:
            used.append(0)
        used[-1] += units
    return used


def measure(text: str) -> SmsLength:
    """Measure ``text`` the way a carrier counts it (see the module docstring)."""
    encoding: Encoding = "GSM-7" if is_gsm7(text) else "UCS-2"
    single, multi = (GSM7_SINGLE, GSM7_MULTI) if encoding == "GSM-7" else (UCS2_SINGLE, UCS2_MULTI)
    units = sum(_char_units(ch, encoding) for ch in text)
    if units == 0:
        return SmsLength(encoding, 0, 0, single)
    if units <= single:
        return SmsLength(encoding, units, 1, single - units)
    layout = _segment_layout(text, encoding, multi)
    return SmsLength(encoding, units, len(layout), multi - layout[-1])


@dataclass(frozen=True)
class FittedSms:
    """A text cut to fit a number of segments.

    Attributes:
        text: what is sent.
        cut: True when ``text`` is shorter than the original (the editor says so).
        length: the measure of ``text``.
    """

    text: str
    cut: bool
    length: SmsLength


def fit_to_segments(text: str, max_segments: int) -> FittedSms:
    """Cut ``text`` at a word boundary so that it takes at most ``max_segments`` segments.

    Why at a word boundary: a notice cut inside a word ("…pick it up by Fri") reads as an error to the patron;
    losing the whole last word reads as a shorter message. A single word longer than the limit is cut inside
    (there is no boundary to use). Trailing spaces left by the cut are removed. Cutting can also change the
    encoding (a UCS-2 character past the cut no longer counts), which only ever makes room.
    """
    if max_segments < 1:
        raise ValueError("an SMS needs at least one segment")
    whole = measure(text)
    if whole.segments <= max_segments:
        return FittedSms(text, False, whole)
    # Longest prefix that fits, found by bisection on the prefix length (measure is monotonic in the prefix).
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if measure(text[:middle]).segments <= max_segments:
            low = middle
        else:
            high = middle - 1
    prefix = text[:low]
    boundary = max(prefix.rfind(" "), prefix.rfind("\n"))
    # Cut at the last space only if the next character starts a new word; a prefix ending exactly before a
    # space already ends on a word boundary.
    if low < len(text) and not text[low].isspace() and boundary > 0:
        prefix = prefix[:boundary]
    prefix = prefix.rstrip()
    return FittedSms(prefix, True, measure(prefix))
