"""The Contact Card's "Channels" section: per event, which channels tell the patron, in order; and the SMS carrier.

Why a section of its own: the card is long already, and the editor has rules of its own (an event that follows
the notification method until staff change it, the order of the channels, the number texts go to, the carrier
the e-mail gateway needs). The card owns reading and saving — both on worker threads, saved in the card's own
transaction — so this module holds plain values only and never touches the database.

Each event is one row: the event's name, its channels as one list (ticked = used, numbered in the order they are
tried), Earlier / Later to move the current channel, and "Follow method" to go back to the notification method.
Keyboard: Tab reaches the list, Left/Right pick a channel, Space ticks it, Ctrl+Left / Ctrl+Right move it
earlier or later (the buttons do the same). A problem (no channel, a password reset without E-Mail) is shown
under its event and keeps Save disabled; missing SMS prerequisites are warnings, not blocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QFocusEvent, QKeyEvent, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QSizePolicy,
    QToolButton,
    QWidget,
)

from desktop.domain.channels import (
    MOBILE_LOCATIONS,
    Channel,
    NoticeEvent,
    Preference,
    check_preference,
    sms_number,
)
from desktop.domain.contacts import format_phone
from desktop.services.patrons.channel_preferences import CARRIER_LIMIT, PatronPreferences, effective_default
from desktop.ui.widgets.icons import icon

#: The event labels' mnemonics (unique on the card: its other labels and buttons use n, v, m, h, x, w, s, r, c).
_EVENT_LABELS = {
    NoticeEvent.READY_FOR_PICKUP: "&Item ready for pickup:",
    NoticeEvent.PICKUP_REMINDER: "&Pickup reminder:",
    NoticeEvent.PASSWORD_RESET: "Passwor&d reset:",
    NoticeEvent.CANCELLATION: "C&ancellation:",
}
_OBJECT_NAMES = {
    NoticeEvent.READY_FOR_PICKUP: "readyForPickup",
    NoticeEvent.PICKUP_REMINDER: "pickupReminder",
    NoticeEvent.PASSWORD_RESET: "passwordReset",
    NoticeEvent.CANCELLATION: "cancellation",
}
_CHANNEL_ROLE = Qt.ItemDataRole.UserRole


def describe(channels: Preference) -> str:
    """``SMS, else E-Mail, else Phone`` — the order as staff read it."""
    return ", else ".join(channel.value for channel in channels) if channels else "no channel"


def _show(label: QLabel, state: str, text: str) -> None:
    """Set a message label's text and its ``state`` (the card's style sheet colours ok / warning / error)."""
    label.setText(text)
    label.setProperty("state", state)
    label.setVisible(bool(text))
    label.style().unpolish(label)
    label.style().polish(label)


class ChannelList(QListWidget):
    """One event's channels in a row: ticked ones are used, in the order shown.

    Signals:
        moveRequested(int): Ctrl+Left (-1) or Ctrl+Right (+1) on the current channel.
    """

    moveRequested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSpacing(2)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        # Drawn on the button colour: the styles outline an unticked box in a shade of the window colour, which
        # vanishes on a dark theme's Base; on Button it shows in light and dark alike.
        palette = self.palette()
        for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive, QPalette.ColorGroup.Disabled):
            palette.setColor(group, QPalette.ColorRole.Base, palette.color(group, QPalette.ColorRole.Button))
            palette.setColor(group, QPalette.ColorRole.Text, palette.color(group, QPalette.ColorRole.ButtonText))
        self.setPalette(palette)
        for channel in Channel:
            item = QListWidgetItem(channel.value)
            item.setData(_CHANNEL_ROLE, channel.value)
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.addItem(item)
        self.setCurrentRow(0)
        row = self.sizeHintForRow(0)
        self.setFixedHeight(row + 2 * self.frameWidth() + 2 * self.spacing() + 6)
        # Room for every channel numbered ("4 · Phone") with its check box, so none hides behind the edge.
        numbers = self.fontMetrics().horizontalAdvance("4 · ")
        widths = sum(self.sizeHintForIndex(self.indexFromItem(self.item(i))).width() for i in range(self.count()))
        self.setMinimumWidth(widths + self.count() * (numbers + 2 * self.spacing()) + 2 * self.frameWidth() + 4)
        #: The row's buttons: focus moving to them keeps the current channel marked (they act on it).
        self.companions: list[QWidget] = []
        self.clearSelection()

    def focusInEvent(self, event: QFocusEvent) -> None:
        """Mark the current channel while the list has focus (every list marked at once would be noise)."""
        super().focusInEvent(event)
        current = self.currentItem()
        if current is not None:
            current.setSelected(True)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        """Unmark the current channel, unless focus went to this row's Earlier / Later (they move it)."""
        super().focusOutEvent(event)
        if QApplication.focusWidget() not in self.companions:
            self.clearSelection()

    def set_current(self, row: int) -> None:
        """Make ``row`` current, marked only while the list (or its buttons) has focus."""
        marked = bool(self.selectedItems())
        self.setCurrentRow(row)
        if not (marked or self.hasFocus()):
            self.clearSelection()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Ctrl+Left / Ctrl+Right move the current channel; everything else as a list does."""
        if event.modifiers() == Qt.KeyboardModifier.ControlModifier and event.key() in (
            Qt.Key.Key_Left,
            Qt.Key.Key_Right,
        ):
            self.moveRequested.emit(-1 if event.key() == Qt.Key.Key_Left else 1)
            event.accept()
            return
        super().keyPressEvent(event)

    def channel_at(self, row: int) -> Channel:
        """The channel of a row of the list."""
        return Channel(str(self.item(row).data(_CHANNEL_ROLE)))


class _EventRow:
    """The widgets and the state of one event's row (``following``: no own choice, the method decides)."""

    def __init__(self, event: NoticeEvent, parent: QWidget) -> None:
        self.event = event
        self.following = True
        name = _OBJECT_NAMES[event]
        self.label = QLabel(_EVENT_LABELS[event], parent)
        self.list = ChannelList(parent)
        self.list.setObjectName(f"{name}Channels")
        self.list.setAccessibleName(f"Channels for {event.value.lower()}, in order")
        self.list.setAccessibleDescription(
            "Ticked channels are used in the order shown; Space ticks, Control+Left and Control+Right move"
        )
        self.label.setBuddy(self.list)
        self.earlier = QToolButton(parent)
        self.earlier.setIcon(icon("previous"))
        self.earlier.setObjectName(f"{name}EarlierButton")
        self.earlier.setAccessibleName(f"Move the current channel earlier for {event.value.lower()}")
        self.earlier.setToolTip("Try the selected channel earlier (Ctrl+Left in the list)")
        self.later = QToolButton(parent)
        self.later.setIcon(icon("next"))
        self.later.setObjectName(f"{name}LaterButton")
        self.later.setAccessibleName(f"Move the current channel later for {event.value.lower()}")
        self.later.setToolTip("Try the selected channel later (Ctrl+Right in the list)")
        self.follow = QToolButton(parent)
        self.follow.setText("Follow method")
        self.follow.setObjectName(f"{name}FollowButton")
        self.follow.setAccessibleName(f"{event.value}: follow the notification method")
        self.follow.setToolTip("Forget this event's own order: use the notification method, as before")
        self.list.companions = [self.earlier, self.later]
        self.message = QLabel(parent)
        self.message.setObjectName(f"{name}ChannelsMessage")
        self.message.setAccessibleName(f"Message for {event.value.lower()}")
        self.message.setWordWrap(True)
        self.message.setMinimumHeight(self.message.fontMetrics().lineSpacing())
        self.server_problem = ""

    def channels(self) -> Preference:
        """The ticked channels in list order."""
        return tuple(
            self.list.channel_at(row)
            for row in range(self.list.count())
            if self.list.item(row).checkState() == Qt.CheckState.Checked
        )

    def show_channels(self, channels: Preference) -> None:
        """Put ``channels`` first, ticked and in order; the others after them, unticked (signals blocked)."""
        current = self.list.currentItem()
        kept = self.list.channel_at(self.list.currentRow()) if current is not None else None
        order = [*channels, *(c for c in Channel if c not in channels)]
        self.list.blockSignals(True)
        for row, channel in enumerate(order):
            item = self.list.item(row)
            item.setData(_CHANNEL_ROLE, channel.value)
            item.setCheckState(Qt.CheckState.Checked if channel in channels else Qt.CheckState.Unchecked)
        self.renumber()
        if kept is not None:
            self.list.set_current(order.index(kept))
        self.list.blockSignals(False)

    def renumber(self) -> None:
        """Ticked channels read ``1 · SMS``, ``2 · E-Mail``; the others just their name."""
        number = 0
        for row in range(self.list.count()):
            item = self.list.item(row)
            channel = self.list.channel_at(row)
            if item.checkState() == Qt.CheckState.Checked:
                number += 1
                text = f"{number} · {channel.value}"
                item.setData(Qt.ItemDataRole.AccessibleTextRole, f"{channel.value}, used, number {number}")
            else:
                text = channel.value
                item.setData(Qt.ItemDataRole.AccessibleTextRole, f"{channel.value}, not used")
            if item.text() != text:
                item.setText(text)


class ChannelPreferencesEditor(QGroupBox):
    """The "Channels" section of the Contact Card.

    Signals:
        edited(): a channel, an order, "Follow method" or the carrier changed.
    """

    edited = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Channels", parent)
        self.setObjectName("channelsSection")
        self.method = "E-Mail"
        self.transport = "off"
        self.phones: list[tuple[str, str, bool]] = []
        self.region = "US"
        self.loaded: tuple[dict[NoticeEvent, Preference], frozenset[NoticeEvent], str] | None = None
        grid = QGridLayout(self)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(1)
        intro = QLabel("Which channels tell the patron about each event, tried in the order shown.")
        intro.setObjectName("channelsIntro")
        intro.setWordWrap(True)
        grid.addWidget(intro, 0, 0, 1, 5)
        self.rows: dict[NoticeEvent, _EventRow] = {}
        for index, event in enumerate(NoticeEvent):
            row = _EventRow(event, self)
            line = 1 + 2 * index
            grid.addWidget(row.label, line, 0)
            grid.addWidget(row.list, line, 1)
            grid.addWidget(row.earlier, line, 2)
            grid.addWidget(row.later, line, 3)
            grid.addWidget(row.follow, line, 4)
            grid.addWidget(row.message, line + 1, 1, 1, 4)
            row.list.itemChanged.connect(self.on_item_changed)
            row.list.moveRequested.connect(self.on_move_requested)
            row.earlier.clicked.connect(self.on_earlier)
            row.later.clicked.connect(self.on_later)
            row.follow.clicked.connect(self.on_follow)
            row.list.currentRowChanged.connect(self.on_current_changed)
            row.list.itemSelectionChanged.connect(self.on_selection_changed)
            self.rows[event] = row
        line = 1 + 2 * len(NoticeEvent)
        texts_label = QLabel("Texts go to:")
        self.sms_number_label = QLabel()
        self.sms_number_label.setObjectName("smsNumberLabel")
        self.sms_number_label.setAccessibleName("The number texts go to")
        self.sms_number_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.sms_number_label.setWordWrap(True)
        grid.addWidget(texts_label, line, 0)
        grid.addWidget(self.sms_number_label, line, 1, 1, 4)
        self.carrier_combo = QComboBox()
        self.carrier_combo.setObjectName("smsCarrierCombo")
        self.carrier_combo.setAccessibleName("SMS carrier")
        self.carrier_combo.setEditable(True)
        self.carrier_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.carrier_combo.setToolTip(
            "The patron's mobile carrier, for the e-mail-to-SMS gateway; empty when not known"
        )
        line_edit = self.carrier_combo.lineEdit()
        assert line_edit is not None  # an editable combo has one
        line_edit.setMaxLength(CARRIER_LIMIT)
        line_edit.setPlaceholderText("(not known)")
        carrier_label = QLabel("SMS carri&er:")
        carrier_label.setBuddy(self.carrier_combo)
        grid.addWidget(carrier_label, line + 1, 0)
        grid.addWidget(self.carrier_combo, line + 1, 1)
        self.sms_warning = QLabel()
        self.sms_warning.setObjectName("smsWarning")
        self.sms_warning.setAccessibleName("Warning about text messages")
        self.sms_warning.setWordWrap(True)
        self.sms_warning.hide()
        grid.addWidget(self.sms_warning, line + 2, 1, 1, 4)
        grid.setColumnStretch(1, 1)
        self.carrier_combo.editTextChanged.connect(self.on_carrier_edited)
        self._refresh()

    # --- filling --------------------------------------------------------------------------------------------
    def load(
        self,
        preferences: PatronPreferences | None,
        method: str,
        carrier: str,
        carriers: Iterable[str],
        transport: str,
    ) -> None:
        """Show what the database holds (the card just loaded); what is shown becomes "unchanged"."""
        self.method, self.transport = method, transport
        self.carrier_combo.blockSignals(True)
        self.carrier_combo.clear()
        self.carrier_combo.addItem("")
        for name in carriers:
            self.carrier_combo.addItem(name)
        self.carrier_combo.setEditText(carrier)
        self.carrier_combo.blockSignals(False)
        stored = preferences.stored if preferences is not None else frozenset()
        for event, row in self.rows.items():
            row.following = event not in stored
            row.server_problem = ""
            chosen = preferences.channels[event] if preferences is not None else effective_default(method, event)
            row.show_channels(effective_default(method, event) if row.following else chosen)
        self.loaded = (self.channels(), self.following(), self.carrier())
        self._refresh()

    def restore(
        self, channels: Mapping[NoticeEvent, Preference], following: Iterable[NoticeEvent], carrier: str
    ) -> None:
        """Put back what staff had chosen (after a reload that took in another workstation's save)."""
        follows = set(following)
        for event, row in self.rows.items():
            row.following = event in follows
            row.show_channels(effective_default(self.method, event) if row.following else channels[event])
        self.carrier_combo.blockSignals(True)
        self.carrier_combo.setEditText(carrier)
        self.carrier_combo.blockSignals(False)
        self._refresh()

    def set_method(self, method: str) -> None:
        """The card's notification method changed: events that follow it show its channels."""
        self.method = method
        for event, row in self.rows.items():
            if row.following:
                row.show_channels(effective_default(method, event))
        self._refresh()

    def set_phones(self, phones: Iterable[tuple[str, str, bool]], region: str) -> None:
        """The card's valid phones as ``(E.164, location name, primary)``: where texts would go."""
        self.phones, self.region = list(phones), region
        self._refresh()

    def set_server_problems(self, problems: Mapping[str, str]) -> None:
        """Problems the service found, keyed by event name, shown under their events until edited."""
        for event, row in self.rows.items():
            row.server_problem = problems.get(event.value, "")
        self._refresh()

    # --- reading --------------------------------------------------------------------------------------------
    def channels(self) -> dict[NoticeEvent, Preference]:
        """Every event's channels as shown (a following event: the method's)."""
        return {event: row.channels() for event, row in self.rows.items()}

    def following(self) -> frozenset[NoticeEvent]:
        """The events with no own choice."""
        return frozenset(event for event, row in self.rows.items() if row.following)

    def carrier(self) -> str:
        """The carrier as typed, spaces tidied ('' = not known)."""
        return " ".join(self.carrier_combo.currentText().split())

    def changed_events(self) -> frozenset[NoticeEvent]:
        """The events whose channels or "follows the method" differ from what was loaded."""
        if self.loaded is None:
            return frozenset()
        was_channels, was_following, _carrier = self.loaded
        channels, following = self.channels(), self.following()
        return frozenset(
            event
            for event in NoticeEvent
            if (channels[event], event in following) != (was_channels[event], event in was_following)
        )

    @property
    def carrier_changed(self) -> bool:
        """True when the carrier differs from what was loaded."""
        return self.loaded is not None and self.carrier() != self.loaded[2]

    @property
    def changed(self) -> bool:
        """True when something differs from what was loaded."""
        return self.loaded is not None and (self.channels(), self.following(), self.carrier()) != self.loaded

    def problems(self) -> list[str]:
        """Why the channels cannot be saved, one sentence per problem (also shown under the events)."""
        found: list[str] = []
        for event, row in self.rows.items():
            problems = check_preference(row.channels(), event)
            if row.server_problem and not problems:
                problems = [row.server_problem]
            found.extend(problems)
        return found

    def sms_chosen(self) -> bool:
        """True when any event uses SMS."""
        return any(Channel.SMS in row.channels() for row in self.rows.values())

    # --- editing --------------------------------------------------------------------------------------------
    def _row_of(self, widget: object) -> _EventRow | None:
        return next(
            (r for r in self.rows.values() if widget in (r.list, r.earlier, r.later, r.follow)),
            None,
        )

    @Slot(QListWidgetItem)
    def on_item_changed(self, item: QListWidgetItem) -> None:
        """A channel was ticked or unticked: the event now has its own choice."""
        row = next((r for r in self.rows.values() if r.list is item.listWidget()), None)
        if row is None:
            return
        self._own_choice(row)

    @Slot(int)
    def on_move_requested(self, step: int) -> None:
        """Ctrl+Left / Ctrl+Right in a list."""
        row = self._row_of(self.sender())
        if row is not None:
            self._move(row, step)

    @Slot()
    def on_earlier(self) -> None:
        """The Earlier button of a row."""
        row = self._row_of(self.sender())
        if row is not None:
            self._move(row, -1)

    @Slot()
    def on_later(self) -> None:
        """The Later button of a row."""
        row = self._row_of(self.sender())
        if row is not None:
            self._move(row, 1)

    @Slot()
    def on_follow(self) -> None:
        """Back to the notification method."""
        row = self._row_of(self.sender())
        if row is None:
            return
        row.following = True
        row.server_problem = ""
        row.show_channels(effective_default(self.method, row.event))
        self._refresh()
        self.edited.emit()

    @Slot(int)
    def on_current_changed(self, _row: int) -> None:
        """Another channel is current: Earlier / Later follow it."""
        self._refresh()

    @Slot()
    def on_selection_changed(self) -> None:
        """A channel was marked or unmarked: Earlier / Later follow."""
        self._refresh()

    @Slot(str)
    def on_carrier_edited(self, _text: str) -> None:
        """The carrier was typed or chosen."""
        self._refresh()
        self.edited.emit()

    def _move(self, row: _EventRow, step: int) -> None:
        """Move the current channel one place; it stays current so the keys can repeat."""
        index = row.list.currentRow()
        target = index + step
        if index < 0 or not 0 <= target < row.list.count():
            return
        row.list.blockSignals(True)
        item = row.list.takeItem(index)
        row.list.insertItem(target, item)
        row.list.set_current(target)
        row.list.blockSignals(False)
        self._own_choice(row)

    def _own_choice(self, row: _EventRow) -> None:
        row.following = False
        row.server_problem = ""
        row.list.blockSignals(True)
        row.renumber()
        row.list.blockSignals(False)
        self._refresh()
        self.edited.emit()

    # --- showing --------------------------------------------------------------------------------------------
    def _refresh(self) -> None:
        """Every row's message and buttons, the texts' number and the SMS warning."""
        for event, row in self.rows.items():
            channels = row.channels()
            problems = check_preference(channels, event)
            row.follow.setEnabled(not row.following)
            # They move the marked channel: none marked (the list never had focus), nothing to move.
            marked = bool(row.list.selectedItems())
            row.earlier.setEnabled(marked and row.list.currentRow() > 0)
            row.later.setEnabled(marked and 0 <= row.list.currentRow() < row.list.count() - 1)
            default = effective_default(self.method, event)
            if problems:
                _show(row.message, "error", " ".join(problems))
            elif row.server_problem:
                _show(row.message, "error", row.server_problem)
            elif row.following:
                _show(row.message, "ok", f"Follows the notification method ({describe(default)}).")
            elif channels == default:
                _show(
                    row.message,
                    "ok",
                    f"{describe(channels)}: the same as the notification method, so it follows the method.",
                )
            else:
                _show(row.message, "ok", f"Own order: {describe(channels)}.")
        number = sms_number(self.phones)
        if number is None:
            self.sms_number_label.setText("no phone on the card")
        else:
            location = next((loc for e164, loc, _p in self.phones if e164 == number), "")
            shown = format_phone(number, self.region)
            self.sms_number_label.setText(f"{shown} ({location})" if location else shown)
        warnings = []
        if self.sms_chosen():
            if number is None:
                warnings.append("SMS is chosen but the card has no mobile number: add a phone at Cell.")
            elif not any(e164 == number and loc.casefold() in MOBILE_LOCATIONS for e164, loc, _p in self.phones):
                warnings.append(
                    "SMS is chosen but no phone is at Cell: texts go to the primary phone, and if it is a landline "
                    "the next channel takes over."
                )
            if self.transport == "gateway" and not self.carrier():
                warnings.append(
                    "Texts go through the e-mail-to-SMS gateway, which needs the patron's carrier: choose one."
                )
        _show(self.sms_warning, "warning", " ".join(f"⚠ {w}" for w in warnings))
