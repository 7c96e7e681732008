"""Status colours that stay readable in whatever palette is in use: errors, warnings, successes, muted captions.

Hard-coded reds and greens were chosen against a white window; in a dark palette they fell to 1.8–2.9:1, and a
banner that set only a background left its text (the palette's light text) on a pale yellow at 1.1:1. Here each
tone starts from a familiar hue and is lightened or darkened until it has WCAG contrast of at least
:data:`MINIMUM_CONTRAST` against the background it is drawn on, which is read from the widget's own palette.

Widgets that show a status carry the dynamic property ``statusTone`` (see :func:`set_tone`), so tests can find
every one of them and measure it.

The colours are computed once, into style sheets, from the palette in use at the time; when the palette changes
while a window is open (the desktop switches to dark mode in the evening), :class:`PaletteFollower` computes them
again for every widget that carries a tone, a banner tone or a changed-field tint.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QWidget

#: WCAG 2 AA for normal text.
MINIMUM_CONTRAST = 4.5

#: The dynamic property naming a widget's tone (``"error"``, ``"warning"``, ``"ok"``, ``"muted"``).
TONE_PROPERTY = "statusTone"
#: How a tone was applied, for re-applying it when the palette changes: ``"text"``, ``"banner"``, ``"frame"``, or
#: ``"text:<role number>"`` (drawn on that palette role).
_HOW_PROPERTY = "statusToneHow"


class Tone(StrEnum):
    """What a coloured text says."""

    ERROR = "error"
    WARNING = "warning"
    OK = "ok"
    MUTED = "muted"


#: The hue each tone starts from (the colours staff know from before); only its lightness is adjusted.
_BASE = {
    Tone.ERROR: QColor("#b3261e"),
    Tone.WARNING: QColor("#8a5a00"),
    Tone.OK: QColor("#146c43"),
    Tone.MUTED: QColor("#5f6368"),
}


def relative_luminance(colour: QColor) -> float:
    """WCAG 2 relative luminance of ``colour`` (0 black … 1 white)."""

    def channel(value: float) -> float:
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(colour.redF()) + 0.7152 * channel(colour.greenF()) + 0.0722 * channel(colour.blueF())


def contrast_ratio(first: QColor, second: QColor) -> float:
    """WCAG 2 contrast ratio of two colours (1 … 21)."""
    a, b = relative_luminance(first), relative_luminance(second)
    lighter, darker = max(a, b), min(a, b)
    return (lighter + 0.05) / (darker + 0.05)


def is_dark(background: QColor) -> bool:
    """Whether text on ``background`` should be light."""
    return relative_luminance(background) < 0.18


def readable(colour: QColor, background: QColor, minimum: float = MINIMUM_CONTRAST) -> QColor:
    """``colour``'s hue with the lightness that reads on ``background`` (contrast ≥ ``minimum``).

    On a dark background the colour is lightened, on a light one darkened, in small steps; black or white is
    the last resort, and both always reach 4.5:1 against one side.
    """
    if contrast_ratio(colour, background) >= minimum:
        return QColor(colour)
    lighten = is_dark(background)
    hue, saturation, lightness = colour.hslHueF(), colour.hslSaturationF(), colour.lightnessF()
    step = 0.02
    while 0.0 <= lightness <= 1.0:
        lightness = lightness + step if lighten else lightness - step
        candidate = QColor.fromHslF(hue if hue >= 0 else 0.0, saturation, min(max(lightness, 0.0), 1.0))
        if contrast_ratio(candidate, background) >= minimum:
            return candidate
    return QColor("white") if lighten else QColor("black")


def _palette(widget: QWidget | None) -> QPalette:
    """The palette ``widget`` is drawn over: its parent's (its own may carry an earlier tone's colours)."""
    parent = widget.parentWidget() if widget is not None else None
    return parent.palette() if parent is not None else QApplication.palette()


def tone_colour(tone: Tone, widget: QWidget | None = None, role: QPalette.ColorRole | None = None) -> QColor:
    """The text colour for ``tone`` on ``widget``'s background (``role``: Window unless told, Base for views)."""
    palette = _palette(widget)
    background = palette.color(role if role is not None else QPalette.ColorRole.Window)
    return readable(_BASE[tone], background)


def banner_colours(tone: Tone, widget: QWidget | None = None) -> tuple[QColor, QColor, QColor]:
    """(text, background, border) for a banner of ``tone``: a tint of the tone over the window colour.

    The banner sets its text colour as well as its background, so it reads in a dark palette too.
    """
    window = _palette(widget).color(QPalette.ColorRole.Window)
    base = _BASE[tone]
    mix = 0.22 if is_dark(window) else 0.12
    background = QColor.fromRgbF(
        window.redF() * (1 - mix) + base.redF() * mix,
        window.greenF() * (1 - mix) + base.greenF() * mix,
        window.blueF() * (1 - mix) + base.blueF() * mix,
    )
    border = readable(base, window, 3.0)  # a non-text element: WCAG asks 3:1
    return readable(base, background), background, border


def tone_style(tone: Tone, widget: QWidget | None = None, role: QPalette.ColorRole | None = None) -> str:
    """A style-sheet declaration setting ``tone``'s text colour for ``widget``."""
    return f"color: {tone_colour(tone, widget, role).name()};"


def banner_style(tone: Tone, widget: QWidget | None = None, selector: str = "", extra: str = "") -> str:
    """A style-sheet rule for a banner of ``tone`` (text, background and border), optionally under ``selector``."""
    text, background, border = banner_colours(tone, widget)
    body = (
        f"color: {text.name()}; background: {background.name()}; border: 1px solid {border.name()}; "
        f"border-radius: 3px; {extra}"
    )
    return f"{selector} {{ {body} }}" if selector else body


def set_tone(
    widget: QWidget, tone: Tone | None, *, banner: bool = False, role: QPalette.ColorRole | None = None
) -> None:
    """Colour ``widget``'s text for ``tone`` (``None``: the palette's own text) and mark it for tests.

    Args:
        banner: also give it a tinted background and border (an error or warning banner).
        role: the palette role it is drawn on (Window unless told; Base for lists and tables).
    """
    widget.setProperty(TONE_PROPERTY, tone.value if tone is not None else "")
    widget.setProperty(_HOW_PROPERTY, "banner" if banner else "text" if role is None else f"text:{role.value}")
    PaletteFollower.ensure()
    if tone is None:
        widget.setStyleSheet("")
    elif banner:
        widget.setStyleSheet(banner_style(tone, widget, extra="padding: 6px;"))
    else:
        widget.setStyleSheet(tone_style(tone, widget, role))


#: The dynamic property naming a banner frame's tone (its labels carry :data:`TONE_PROPERTY`).
_FRAME_TONE_PROPERTY = "bannerTone"


def set_banner_frame(frame: QWidget, tone: Tone | None, labels: Sequence[QWidget] = ()) -> None:
    """Give ``frame`` (a banner holding ``labels`` and maybe buttons) ``tone``'s tint, border and text colour.

    The rule names the frame by its object name so its buttons keep their own look; its labels get the text
    colour explicitly (style sheets are not inherited), which is what kept the old banners unreadable in a dark
    palette.
    """
    name = frame.objectName()
    for label in labels:
        label.setProperty(TONE_PROPERTY, tone.value if tone is not None else "")
    frame.setProperty(_FRAME_TONE_PROPERTY, tone.value if tone is not None else "")
    PaletteFollower.ensure()
    if tone is None:
        frame.setStyleSheet("")
        return
    text, background, border = banner_colours(tone, frame)
    frame.setStyleSheet(
        f"#{name} {{ background: {background.name()}; border: 1px solid {border.name()}; border-radius: 3px; }}"
        f"#{name} QLabel {{ color: {text.name()}; background: transparent; }}"
    )


def modified_field_colours(widget: QWidget | None = None) -> tuple[QColor, QColor]:
    """(text, background) for a field whose value was changed and not saved yet: a yellow tint of the field's
    own background with text that reads on it (the old pale yellow left a dark palette's light text at 1.1:1)."""
    base = _palette(widget).color(QPalette.ColorRole.Base)
    yellow = QColor("#ffc400")
    mix = 0.22 if is_dark(base) else 0.3
    background = QColor.fromRgbF(
        base.redF() * (1 - mix) + yellow.redF() * mix,
        base.greenF() * (1 - mix) + yellow.greenF() * mix,
        base.blueF() * (1 - mix) + yellow.blueF() * mix,
    )
    text = readable(_palette(widget).color(QPalette.ColorRole.Text), background)
    return text, background


def set_modified_tint(widget: QWidget, on: bool) -> None:
    """Tint ``widget`` (a field) as changed-but-not-saved, or take the tint off.

    Background and text are set together, on the field's own style sheet: a ``[modified='true']`` rule on the
    window set only the background, and re-polishing the field from inside its own key press kept the old
    colours. Marked by the dynamic property ``unsaved`` (QLineEdit's own ``modified`` property turns true at
    the first key press, so a check of it never saw a change and the tint never came).
    """
    widget.setProperty("unsaved", on)
    PaletteFollower.ensure()
    if not on:
        widget.setStyleSheet("")
        return
    text, background = modified_field_colours(widget)
    widget.setStyleSheet(f"background: {background.name()}; color: {text.name()};")


def key_tip_colours(widget: QWidget | None = None, enabled: bool = True) -> tuple[QColor, QColor, QColor]:
    """(text, background, border) of a ribbon key tip badge: the palette's tooltip colours, the text brought to
    4.5:1 on them (a disabled button's badge too: it is read to know the letter is there but does nothing)."""
    palette = widget.palette() if widget is not None else QApplication.palette()
    background = palette.color(QPalette.ColorRole.ToolTipBase)
    text = palette.color(QPalette.ColorRole.ToolTipText)
    if not enabled:
        text = _BASE[Tone.MUTED]
    border = readable(palette.color(QPalette.ColorRole.WindowText), background, 3.0)  # a non-text element: 3:1
    return readable(text, background), background, border


def reapply_colours(widgets: Sequence[QWidget] | None = None) -> int:
    """Compute every tone, banner and changed-field tint again from the palettes in use now; how many widgets.

    Args:
        widgets: the widgets to look at (every widget of the application unless told).
    """
    done = 0
    for widget in widgets if widgets is not None else QApplication.allWidgets():
        tone = widget.property(TONE_PROPERTY)
        how = widget.property(_HOW_PROPERTY)
        if tone and how:
            role = QPalette.ColorRole(int(how.split(":", 1)[1])) if str(how).startswith("text:") else None
            set_tone(widget, Tone(tone), banner=how == "banner", role=role)
            done += 1
        frame_tone = widget.property(_FRAME_TONE_PROPERTY)
        if frame_tone:
            labels = [w for w in widget.findChildren(QWidget) if w.property(TONE_PROPERTY) == frame_tone]
            set_banner_frame(widget, Tone(frame_tone), labels)
            done += 1
        if widget.property("unsaved") is True:
            set_modified_tint(widget, True)
            done += 1
    return done


class PaletteFollower(QObject):
    """Follows the application's palette and re-applies every colour computed from the old one.

    One per application, made by the first tone set (:meth:`ensure`); it listens to the application's
    ``paletteChanged`` (a signal, not an event filter: a filter on the application would run Python for every
    event of every widget). The work waits for the event loop's next turn: by then every widget has taken the
    new palette, so the colours are computed against it.
    """

    _instance: PaletteFollower | None = None

    @classmethod
    def ensure(cls) -> None:
        """Make the follower for the running application, once."""
        app = QApplication.instance()
        if app is None or (cls._instance is not None and cls._instance.parent() is app):
            return
        follower = cls(app)
        assert isinstance(app, QApplication)
        app.paletteChanged.connect(follower.on_palette_changed)
        cls._instance = follower

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self._pending = False

    @Slot(QPalette)
    def on_palette_changed(self, _palette: QPalette) -> None:
        """The palette changed: re-apply the colours on the next turn (several changes in a row: once)."""
        if not self._pending:
            self._pending = True
            QTimer.singleShot(0, self, self.reapply)

    @Slot()
    def reapply(self) -> None:
        """Re-apply (see :func:`reapply_colours`)."""
        self._pending = False
        QApplication.sendPostedEvents()  # the widgets' own palette changes are queued: let them land first
        reapply_colours()
