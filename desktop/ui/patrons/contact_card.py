"""The Contact Card (``contactCard``): all of a patron's e-mails, phones, faxes, web sites and postal address.

Every field is checked as it is typed, with its own message (a phone shows its E.164 form as a preview); Save
stays disabled while any field is invalid, and nothing typed is ever thrown away: a refused save (another
workstation saved first, or a field the server refused) leaves the card as it is with the reason on top.
An e-mail address already held in another household is a warning naming that patron, not a block.

The card's first section holds the notification and delivery methods: a change is saved with the card, recorded
with who and when (the last changes are listed under the choices), and moves the patron's requests waiting for
contact to the right Contact Customers group. E-Mail without an e-mail address on the card is refused as typed.
Below it, the "Channels" section (:mod:`desktop.ui.patrons.channel_preferences_editor`) edits the per-event
channels and the SMS carrier; they are saved with the card's Save, in its transaction, and a refused save keeps
them as chosen like every other field.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import shiboken6
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QKeySequence, QPalette, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.domain.channels import NoticeEvent, Preference
from desktop.domain.contacts import ContactKind, email_key, format_phone
from desktop.domain.methods import DeliveryMethod, NotificationMethod
from desktop.services.errors import ConcurrentEditError, ValidationError
from desktop.services.notices.bounces import clear_flag
from desktop.services.patrons.contact_card import (
    ADDRESS_LIMITS,
    CardData,
    CardPoint,
    FieldCheck,
    LocationChoice,
    Methods,
    PostalAddress,
    SaveResult,
    check_methods,
    check_value,
    default_location,
    email_warnings,
    load_card,
    merge_card,
    save_card,
    warning_text,
)
from desktop.services.patrons.duplicates import PatronRef
from desktop.ui.context import AppContext
from desktop.ui.patrons.channel_preferences_editor import ChannelPreferencesEditor
from desktop.ui.widgets.colours import Tone, tone_colour
from desktop.ui.widgets.focus import tab_in_reading_order
from desktop.ui.widgets.icons import icon
from desktop.ui.window_state import restore_geometry, save_geometry

_PHONE_KINDS = {ContactKind.PHONE.value, ContactKind.FAX.value}
_SECTION_TITLES = {"email": "E-mail addresses", "phone": "Phones", "fax": "Faxes", "web": "Web sites"}
_ADD_TEXT = {"email": "Add e-&mail", "phone": "Add p&hone", "fax": "Add fa&x", "web": "Add &web site"}
_PLACEHOLDERS = {
    "email": "name@example.org",
    "phone": "(217) 555-0100 or +44 20 7946 0958",
    "fax": "(217) 555-0100",
    "web": "https://example.org",
}


def _card_style(card: QWidget) -> str:
    """Invalid fields framed and messages coloured by state, each colour readable on the card's palette."""
    error = tone_colour(Tone.ERROR, card).name()
    frame = tone_colour(Tone.ERROR, card, QPalette.ColorRole.Base).name()
    return (
        f'QLineEdit[invalid="true"] {{ border: 2px solid {frame}; }}'
        f'QLabel[state="error"] {{ color: {error}; }}'
        f'QLabel[state="warning"] {{ color: {tone_colour(Tone.WARNING, card).name()}; }}'
        f'QLabel[state="ok"] {{ color: {tone_colour(Tone.MUTED, card).name()}; }}'
        f'QLabel#contactCardBanner[state="error"] {{ color: {error}; font-weight: bold; }}'
    )


WARNING_DELAY_MS = 400

_open_cards: list[ContactCard] = []


def open_contact_card(
    ctx: AppContext,
    patron_id: int,
    parent: QWidget | None = None,
    *,
    focus_contact_id: int | None = None,
    add: tuple[str, int | None] | None = None,
) -> ContactCard:
    """Show the Contact Card of a patron (the one already open, if any), non-modal.

    Args:
        focus_contact_id: put the cursor in this contact point's field.
        add: ``(kind, location id or None)``: add a new field of that kind and focus it.
    """
    # A card closed a moment ago may not be deleted yet: it is not reused (it holds what was loaded then).
    _open_cards[:] = [c for c in _open_cards if shiboken6.isValid(c) and c.isVisible()]
    card = next((c for c in _open_cards if c.ctx is ctx and c.patron_id == patron_id), None)
    if card is None:
        card = ContactCard(ctx, patron_id, parent)
        _open_cards.append(card)
    card.request(focus_contact_id=focus_contact_id, add=add)
    card.show()
    card.raise_()
    card.activateWindow()
    return card


def _set_state(label: QLabel, state: str, text: str) -> None:
    label.setText(text)
    label.setProperty("state", state)
    label.setVisible(bool(text))
    label.style().unpolish(label)
    label.style().polish(label)


class PointEditor(QWidget):
    """One contact point's line: primary, location, value (and extension), remove; its message below.

    Signals:
        edited(): any field changed.
        removeRequested(object): the remove button was pressed (the editor itself).
        clearBounceRequested(object): "Clear flag" was pressed on a bounced e-mail (the editor itself).
    """

    edited = Signal()
    removeRequested = Signal(object)
    clearBounceRequested = Signal(object)

    def __init__(
        self,
        kind: str,
        number: int,
        locations: Sequence[LocationChoice],
        region: str,
        point: CardPoint | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.kind = kind
        self.region = region
        self.contact_id = point.id if point else None
        self.original = point
        self.warning = ""
        self.server_problem = ""
        label = ContactKind(kind).label
        self.setObjectName(f"{kind}Editor")
        # Never squeezed below its height: when the card is short (200 %, a small screen) it scrolls instead.
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

        self.primary = QRadioButton()
        self.primary.setObjectName(f"{kind}Primary")
        self.primary.setAccessibleName(f"Primary {label.lower()} {number}")
        self.primary.setToolTip(f"The primary {label.lower()}")
        self.location = QComboBox()
        self.location.setObjectName(f"{kind}Location")
        self.location.setAccessibleName(f"Location of {label.lower()} {number}")
        current = point.location_id if point else None
        for loc in locations:
            if loc.allows(kind) and (loc.active or loc.id == current):
                self.location.addItem(loc.name if loc.active else f"{loc.name} (no longer used)", loc.id)
        self.location.addItem("(no location)", None)
        if point is not None:
            self.location.setCurrentIndex(max(self.location.findData(current), 0))
        self.value = QLineEdit(point.value if point else "")
        self.value.setObjectName(f"{kind}Value")
        self.value.setAccessibleName(f"{label} {number}")
        self.value.setPlaceholderText(_PLACEHOLDERS[kind])
        self.value.setMinimumWidth(260)
        self.extension = QLineEdit(point.extension if point else "")
        self.extension.setObjectName(f"{kind}Extension")
        self.extension.setAccessibleName(f"Extension of {label.lower()} {number}")
        self.extension.setPlaceholderText("ext.")
        self.extension.setMaximumWidth(70)
        self.extension.setVisible(kind in _PHONE_KINDS)
        self.remove = QToolButton()
        self.remove.setIcon(icon("remove"))
        self.remove.setObjectName(f"{kind}RemoveButton")
        self.remove.setAccessibleName(f"Remove {label.lower()} {number}")
        self.remove.setToolTip(f"Remove this {label.lower()} from the card")
        self.message = QLabel()
        self.message.setObjectName(f"{kind}Message")
        self.message.setAccessibleName(f"Message for {label.lower()} {number}")
        self.message.setWordWrap(True)
        # A wrapped label's minimum height is not counted by the scroll area: at least one line, or the lines
        # overlap when the card is short (200 %).
        self.message.setMinimumHeight(self.message.fontMetrics().lineSpacing())
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(1)
        grid.addWidget(self.primary, 0, 0)
        grid.addWidget(self.location, 0, 1)
        grid.addWidget(self.value, 0, 2)
        grid.addWidget(self.extension, 0, 3)
        grid.addWidget(self.remove, 0, 4)
        grid.addWidget(self.message, 1, 1, 1, 4)
        grid.setColumnStretch(2, 1)
        # A bounce flagged this address (issue 19): say so, with the button staff press once it is fixed.
        self.bounce = QLabel(f"⚠ {point.bounce_flag}" if point and point.bounce_flag else "")
        self.bounce.setObjectName(f"{kind}BounceFlag")
        self.bounce.setAccessibleName(f"Bounce flag of {label.lower()} {number}")
        self.bounce.setWordWrap(True)
        _set_state(self.bounce, "warning", self.bounce.text())
        self.clear_bounce = QToolButton()
        self.clear_bounce.setText("Clear flag")
        self.clear_bounce.setObjectName(f"{kind}ClearBounceButton")
        self.clear_bounce.setAccessibleName(f"Clear the bounce flag of {label.lower()} {number}")
        self.clear_bounce.setVisible(bool(point and point.bounce_flag))
        self.clear_bounce.clicked.connect(lambda: self.clearBounceRequested.emit(self))
        grid.addWidget(self.bounce, 2, 1, 1, 3)
        grid.addWidget(self.clear_bounce, 2, 4)

        self.value.textChanged.connect(self.on_edited)
        self.extension.textChanged.connect(self.on_edited)
        self.location.currentIndexChanged.connect(self.on_edited)
        self.primary.toggled.connect(self.on_edited)
        self.remove.clicked.connect(self.on_remove)
        self.last_check = self.check()

    @Slot()
    def on_edited(self) -> None:
        """Re-check and tell the card."""
        self.server_problem = ""
        self.last_check = self.check()
        self.edited.emit()

    @Slot()
    def on_remove(self) -> None:
        """Ask the card to drop this line."""
        self.removeRequested.emit(self)

    def check(self) -> FieldCheck:
        """Validate the field now and show the result under it."""
        result = check_value(self.kind, self.value.text(), self.extension.text(), self.region)
        self.value.setProperty("invalid", not result.ok)
        self.value.style().unpolish(self.value)
        self.value.style().polish(self.value)
        if not result.ok:
            _set_state(self.message, "error", result.message)
        elif self.server_problem:
            _set_state(self.message, "error", self.server_problem)
        elif self.warning:
            _set_state(self.message, "warning", "⚠ " + self.warning)
        elif self.kind in _PHONE_KINDS:
            shown = format_phone(result.normalized, self.region, result.extension)
            typed = self.value.text().strip()
            preview = f"Saved as {result.normalized}" if shown == typed else f"{shown}  ·  saved as {result.normalized}"
            _set_state(self.message, "ok", preview)
        else:
            _set_state(self.message, "ok", "")
        return result

    @property
    def valid(self) -> bool:
        """True when the field can be saved."""
        return self.last_check.ok and not self.server_problem

    def set_warning(self, text: str) -> None:
        """Show (or clear) the cross-household warning."""
        if text != self.warning:
            self.warning = text
            self.last_check = self.check()

    def set_server_problem(self, text: str) -> None:
        """Show a problem the service found (location no longer allowed, line removed elsewhere)."""
        self.server_problem = text
        self.last_check = self.check()

    def to_point(self) -> CardPoint:
        """The line as the service takes it."""
        data = self.location.currentData()
        return CardPoint(
            kind=self.kind,
            value=self.value.text(),
            location_id=int(data) if data is not None else None,
            extension=self.extension.text() if self.kind in _PHONE_KINDS else "",
            is_primary=self.primary.isChecked(),
            id=self.contact_id,
        )


class ContactCard(QDialog):
    """The Contact Card of one patron.

    Signals:
        saved(object): the card was saved; the list of warnings (cross-household e-mails) to show.
    """

    saved = Signal(object)
    #: What a method change did to waiting requests (the message shown after saving), for the record window.
    regrouped = Signal(str)

    def __init__(self, ctx: AppContext, patron_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.patron_id = patron_id
        self.data: CardData | None = None
        self.editors: dict[str, list[PointEditor]] = {k.value: [] for k in ContactKind}
        self.groups: dict[str, QButtonGroup] = {}
        self.sections: dict[str, QVBoxLayout] = {}
        self._requests: list[tuple[int | None, tuple[str, int | None] | None]] = []
        self._saving = False
        self._discarding = False
        self.discard_box: QMessageBox | None = None
        self.setObjectName("contactCard")
        self.setAccessibleName("Contact Card")
        self.setWindowTitle("Contact Card")
        self.setModal(False)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setStyleSheet(_card_style(self))
        self.resize(780, 800)
        restore_geometry(self, "contactCard/geometry")

        self.heading = QLabel("Loading…")
        self.heading.setObjectName("contactCardHeading")
        self.heading.setAccessibleName("Patron")
        font = self.heading.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.heading.setFont(font)
        self.banner = QLabel()
        self.banner.setObjectName("contactCardBanner")
        self.banner.setAccessibleName("Contact Card messages")
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.hide()

        body = QWidget()
        self.body_layout = QVBoxLayout(body)
        self.body_layout.addWidget(self._build_methods())
        self.channels_editor = ChannelPreferencesEditor()
        self.channels_editor.edited.connect(self.on_edited)
        self.body_layout.addWidget(self.channels_editor)
        for kind in ContactKind:
            box = QGroupBox(_SECTION_TITLES[kind.value])
            box.setObjectName(f"{kind.value}Section")
            outer = QVBoxLayout(box)
            rows = QVBoxLayout()
            rows.setSpacing(4)
            outer.addLayout(rows)
            add = QPushButton(icon(kind.value), _ADD_TEXT[kind.value])
            add.setObjectName(f"add{kind.name.title()}FieldButton")
            add.setAccessibleName(f"Add a {kind.label.lower()} field")
            add.clicked.connect(functools.partial(self.on_add_clicked, kind.value))
            line = QHBoxLayout()
            line.addWidget(add)
            line.addStretch(1)
            outer.addLayout(line)
            self.sections[kind.value] = rows
            group = QButtonGroup(self)
            group.setExclusive(True)
            self.groups[kind.value] = group
            self.body_layout.addWidget(box)
        self.body_layout.addWidget(self._build_address())
        self.body_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(body)
        scroll.setObjectName("contactCardScroll")

        self.buttons = QDialogButtonBox()
        self.save_button = self.buttons.addButton("&Save", QDialogButtonBox.ButtonRole.AcceptRole)
        self.save_button.setObjectName("saveContactCardButton")
        self.save_button.setAccessibleName("Save the Contact Card")
        self.save_button.setIcon(icon("save"))
        self.reload_button = self.buttons.addButton("&Reload, keep my changes", QDialogButtonBox.ButtonRole.ActionRole)
        self.reload_button.setObjectName("reloadContactCardButton")
        self.reload_button.setAccessibleName("Reload the other workstation's save and keep my changes")
        self.reload_button.setToolTip(
            "Load what the other workstation saved and put your changes back on top; nothing you typed is lost"
        )
        self.reload_button.hide()  # only after a save was refused because of another workstation's save
        self.reload_button.clicked.connect(self.on_reload)
        self.close_button = self.buttons.addButton("&Close", QDialogButtonBox.ButtonRole.RejectRole)
        self.close_button.setObjectName("closeContactCardButton")
        self.close_button.setAccessibleName("Close without saving")
        self.save_button.clicked.connect(self.on_save)
        self.close_button.clicked.connect(self.reject)
        QShortcut(QKeySequence.StandardKey.Save, self, self.on_save)

        self.hint = QLabel()
        self.hint.setObjectName("contactCardHint")
        self.hint.setAccessibleName("Why Save is not available")
        self.hint.setWordWrap(True)
        bottom = QHBoxLayout()
        bottom.addWidget(self.hint, 1)
        bottom.addWidget(self.buttons)

        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.banner)
        layout.addWidget(scroll, 1)
        layout.addLayout(bottom)

        # Owned by the card, stopped when it closes and when the workstation shuts down.
        self.warning_timer = ctx.timer(self, WARNING_DELAY_MS, self.on_check_warnings, single_shot=True)
        self._update_save()
        tab_in_reading_order(self)  # the scroll area is no Tab stop; the first field is
        self.ctx.run(functools.partial(load_card, ctx.db, patron_id), self.on_loaded, self.on_load_failed)

    def _build_methods(self) -> QGroupBox:
        box = QGroupBox("Notification and delivery")
        box.setObjectName("methodsSection")
        form = QFormLayout(box)
        self.notification_combo = QComboBox()
        self.notification_combo.setObjectName("notificationMethodCombo")
        self.notification_combo.setAccessibleName("Notification method")
        for method in NotificationMethod:
            self.notification_combo.addItem(method.value, method.value)
        self.delivery_combo = QComboBox()
        self.delivery_combo.setObjectName("deliveryMethodCombo")
        self.delivery_combo.setAccessibleName("Delivery method")
        for delivery in DeliveryMethod:
            self.delivery_combo.addItem(delivery.value, delivery.value)
        notify_label = QLabel("&Notify by:")
        notify_label.setBuddy(self.notification_combo)
        delivery_label = QLabel("Deli&very:")
        delivery_label.setBuddy(self.delivery_combo)
        form.addRow(notify_label, self.notification_combo)
        form.addRow(delivery_label, self.delivery_combo)
        self.methods_message = QLabel()
        self.methods_message.setObjectName("methodsMessage")
        self.methods_message.setAccessibleName("Message for the notification and delivery methods")
        self.methods_message.setWordWrap(True)
        self.methods_message.hide()
        form.addRow(self.methods_message)
        self.history_label = QLabel()
        self.history_label.setObjectName("methodsHistoryLabel")
        self.history_label.setAccessibleName("Changes of the notification and delivery methods")
        self.history_label.setWordWrap(True)
        self.history_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.history_label.setProperty("state", "ok")
        form.addRow(self.history_label)
        self.notification_combo.currentIndexChanged.connect(self.on_method_changed)
        self.delivery_combo.currentIndexChanged.connect(self.on_edited)
        return box

    @Slot()
    def on_method_changed(self) -> None:
        """The notification method changed: events that follow it show its channels."""
        self.channels_editor.set_method(str(self.notification_combo.currentData()))
        self.on_edited()

    def methods(self) -> Methods:
        """The methods chosen on the card."""
        return Methods(str(self.notification_combo.currentData()), str(self.delivery_combo.currentData()))

    def _show_methods(self, data: CardData, chosen: Methods) -> None:
        for combo, value in ((self.notification_combo, chosen.notification), (self.delivery_combo, chosen.delivery)):
            combo.blockSignals(True)
            if combo.findData(value) < 0:  # a value another system wrote: shown as it is, until staff choose
                combo.addItem(f"{value} (unknown)", value)
            combo.setCurrentIndex(combo.findData(value))
            combo.blockSignals(False)
        lines = [change.line() for change in data.history[:5]]
        self.history_label.setText("Changed: " + "; ".join(lines) if lines else "")
        self.history_label.setVisible(bool(lines))

    def _build_address(self) -> QGroupBox:
        box = QGroupBox("Postal address")
        box.setObjectName("addressSection")
        form = QFormLayout(box)
        self.address_fields: dict[str, QLineEdit] = {}
        for name, label, accessible in (
            ("address1", "Street:", "Street address"),
            ("address2", "Line 2:", "Address line 2"),
            ("city", "City:", "City"),
            ("state", "State:", "State or region"),
            ("zip", "ZIP:", "ZIP or postal code"),
            ("country", "Country:", "Country"),
        ):
            edit = QLineEdit()
            edit.setMaxLength(ADDRESS_LIMITS[name])
            edit.setObjectName(f"{name}Edit")
            edit.setAccessibleName(accessible)
            edit.textChanged.connect(self.on_edited)
            self.address_fields[name] = edit
            form.addRow(label, edit)
        self.address_message = QLabel()
        self.address_message.setObjectName("addressMessage")
        self.address_message.setWordWrap(True)
        self.address_message.hide()
        form.addRow(self.address_message)
        return box

    # --- loading ----------------------------------------------------------------------------------------------
    def request(self, *, focus_contact_id: int | None, add: tuple[str, int | None] | None) -> None:
        """Focus a field or add one, now if loaded, else once loaded."""
        if self.data is None:
            self._requests.append((focus_contact_id, add))
        else:
            self._apply_request(focus_contact_id, add)

    def _apply_request(self, focus_contact_id: int | None, add: tuple[str, int | None] | None) -> None:
        if add is not None:
            self.add_field(add[0], add[1])
        elif focus_contact_id is not None:
            editor = next((e for e in self.all_editors() if e.contact_id == focus_contact_id), None)
            if editor is not None:
                editor.value.setFocus()
                editor.value.selectAll()

    def on_loaded(self, data: CardData) -> None:
        """Fill the card with the patron's saved contact information."""
        if not shiboken6.isValid(self):
            return
        self._fill(data, data.points, data.address)
        for focus, add in self._requests:
            self._apply_request(focus, add)
        self._requests.clear()
        self.warning_timer.start()
        self._update_save()

    def _fill(self, data: CardData, points: Sequence[CardPoint], address: PostalAddress) -> None:
        """Show ``points`` and ``address`` as the card's lines, ``data`` being what the database holds."""
        self.data = data
        household = f" — {data.household_name}" if data.household_name else ""
        self.heading.setText(f"{data.patron_name}{household}")
        self.setWindowTitle(f"Contact Card — {data.patron_name}")
        for editor in self.all_editors():
            self.groups[editor.kind].removeButton(editor.primary)
            editor.setParent(None)
            editor.deleteLater()
        for kind in self.editors:
            self.editors[kind] = []
        for point in points:
            self._add_editor(point.kind, point)
        for name, edit in self.address_fields.items():
            edit.setText(getattr(address, name))
        self._show_methods(data, data.methods)
        self.channels_editor.load(
            data.preferences, data.methods.notification, data.sms_carrier, data.carriers, data.sms_transport
        )
        self.channels_editor.set_phones(self._phones(), self.region)
        tab_in_reading_order(self)  # the new lines go where they are shown, not after Close

    def on_load_failed(self, error: object) -> None:
        """The patron could not be read: say so; nothing to edit."""
        if shiboken6.isValid(self):
            self._show_banner("error", f"Could not open the Contact Card: {error}")

    @Slot()
    def on_reload(self) -> None:
        """After another workstation saved: load their save (worker thread) and merge this card's edits onto it."""
        if self.data is None or self._saving:
            return
        self.reload_button.setEnabled(False)
        self._show_banner("ok", "Reloading…")
        self.ctx.run(functools.partial(load_card, self.ctx.db, self.patron_id), self.on_reloaded, self.on_reload_failed)

    def on_reloaded(self, theirs: CardData) -> None:
        """Show their save with this card's changes on top, and say what was taken in and what to check."""
        if not shiboken6.isValid(self) or self.data is None:
            return
        merged = merge_card(self.data, self.points(), self.address(), theirs)
        mine = self.methods()
        keep_mine = mine != self.data.methods  # changed here: kept over theirs, like every other field
        editor = self.channels_editor
        mine_changed, carrier_changed = editor.changed_events(), editor.carrier_changed
        my_channels, my_following, my_carrier = editor.channels(), editor.following(), editor.carrier()
        self._fill(theirs, merged.points, merged.address)
        if keep_mine:
            self._show_methods(theirs, mine)
            editor.set_method(mine.notification)
        # An event (or the carrier) changed here keeps this card's choice over theirs, like every other field.
        channels, following = editor.channels(), set(editor.following())
        for event in mine_changed:
            channels[event] = my_channels[event]
            following.discard(event)
            if event in my_following:
                following.add(event)
        editor.restore(channels, following, my_carrier if carrier_changed else editor.carrier())
        self.reload_button.setEnabled(True)
        self.reload_button.setDefault(False)
        self.reload_button.hide()
        self.save_button.setDefault(True)
        plural = "change" if merged.taken == 1 else "changes"
        taken = f"{merged.taken} {plural} from the other workstation taken in" if merged.taken else "Reloaded"
        if merged.conflicts:
            self._show_banner(
                "error",
                f"{taken}. Changed in both places — yours is kept, check before saving: " + "; ".join(merged.conflicts),
            )
        else:
            self._show_banner("ok", f"{taken}; your changes are kept. Check, then Save.")
        self.on_edited()

    def on_reload_failed(self, error: object) -> None:
        """The reload failed (the database is unreachable, the patron was deleted): keep everything typed."""
        if shiboken6.isValid(self):
            self.reload_button.setEnabled(True)
            self._show_banner("error", f"Could not reload: {error}. What you typed is still here.")

    # --- editors ----------------------------------------------------------------------------------------------
    def all_editors(self) -> list[PointEditor]:
        """Every line, in card order (kind by kind)."""
        return [e for kind in ContactKind for e in self.editors[kind.value]]

    def _add_editor(self, kind: str, point: CardPoint | None) -> PointEditor:
        assert self.data is not None
        editor = PointEditor(kind, len(self.editors[kind]) + 1, self.data.locations, self.region, point)
        self.groups[kind].addButton(editor.primary)
        if (point is not None and point.is_primary) or not self.editors[kind]:
            editor.primary.setChecked(True)
        self.editors[kind].append(editor)
        self.sections[kind].addWidget(editor)
        editor.edited.connect(self.on_edited)
        editor.removeRequested.connect(self.on_remove_editor)
        editor.clearBounceRequested.connect(self.on_clear_bounce)
        tab_in_reading_order(self)
        return editor

    @Slot(object)
    def on_clear_bounce(self, editor: PointEditor) -> None:
        """Clear a bounced e-mail's flag now (its own transaction; the card's other edits stay as typed)."""
        if editor.contact_id is None:
            return
        editor.clear_bounce.setEnabled(False)
        done = functools.partial(self._bounce_cleared, editor)
        self.ctx.run(functools.partial(clear_flag, self.ctx.db, [editor.contact_id]), done, self._clear_failed)

    def _clear_failed(self, error: object) -> None:
        if shiboken6.isValid(self):
            self._show_banner("error", f"The bounce flag was not cleared: {error}")

    def _bounce_cleared(self, editor: PointEditor, _count: object) -> None:
        if not shiboken6.isValid(editor):
            return
        _set_state(editor.bounce, "ok", "")
        editor.clear_bounce.setVisible(False)
        self.ctx.changed.emit("patrons")

    @property
    def region(self) -> str:
        """Region for phone numbers typed without a country code."""
        return self.ctx.settings.phone_region

    def on_add_clicked(self, kind: str, _checked: bool = False) -> None:
        """An Add button of a section."""
        self.add_field(kind, None)

    def add_field(self, kind: str, location_id: int | None) -> PointEditor | None:
        """Add an empty line of ``kind`` with ``location_id`` (or the kind's default) and put the cursor in it."""
        if self.data is None:
            self._requests.append((None, (kind, location_id)))
            return None
        editor = self._add_editor(kind, None)
        chosen = location_id
        if chosen is None:
            default = default_location(self.data.locations, kind)
            chosen = default.id if default is not None else None
        index = editor.location.findData(chosen)
        if index >= 0:
            editor.location.setCurrentIndex(index)
        editor.value.setFocus()
        QTimer.singleShot(0, editor.value.setFocus)  # after the window is shown and raised
        self._update_save()
        return editor

    @Slot(object)
    def on_remove_editor(self, editor: object) -> None:
        """Drop a line from the card (saved only with Save); the next of its kind becomes primary if needed."""
        if not isinstance(editor, PointEditor):
            return
        kind = editor.kind
        self.editors[kind].remove(editor)
        self.groups[kind].removeButton(editor.primary)
        was_primary = editor.primary.isChecked()
        editor.setParent(None)
        editor.deleteLater()
        if was_primary and self.editors[kind]:
            self.editors[kind][0].primary.setChecked(True)
        self.on_edited()

    # --- state ------------------------------------------------------------------------------------------------
    def points(self) -> list[CardPoint]:
        """The card's lines as the service takes them."""
        return [e.to_point() for e in self.all_editors()]

    def address(self) -> PostalAddress:
        """The card's postal address."""
        return PostalAddress(**{name: edit.text() for name, edit in self.address_fields.items()})

    @property
    def dirty(self) -> bool:
        """True when the card differs from what was loaded."""
        if self.data is None:
            return False
        loaded = [(p.kind, p.value, p.location_id, p.extension, p.is_primary, p.id) for p in self.data.points]
        now = [(p.kind, p.value, p.location_id, p.extension, p.is_primary, p.id) for p in self.points()]
        return (
            loaded != now
            or self.address() != self.data.address
            or self.methods() != self.data.methods
            or self.channels_editor.changed
        )

    def problems(self) -> list[str]:
        """Messages of the invalid lines, in card order (a refused method first: it is at the top)."""
        found = [f"{ContactKind(e.kind).label} {n}: {e.message.text()}" for n, e in self._numbered() if not e.valid]
        return self._method_problems() + [f"Channels: {p}" for p in self.channels_editor.problems()] + found

    def _method_problems(self) -> list[str]:
        """The methods' problems given the card as typed now, shown under the choices (changed methods only)."""
        if self.data is None or self.methods() == self.data.methods:
            _set_state(self.methods_message, "ok", "")
            return []
        problems = check_methods(self.methods(), self.points(), self.address())
        text = " ".join(problems.values())
        _set_state(self.methods_message, "error" if problems else "ok", text)
        return [f"Methods: {p}" for p in problems.values()]

    def _numbered(self) -> list[tuple[int, PointEditor]]:
        return [(n + 1, e) for kind in ContactKind for n, e in enumerate(self.editors[kind.value])]

    def _phones(self) -> list[tuple[str, str, bool]]:
        """The card's valid phones as ``(E.164, location name, primary)``, for where texts would go."""
        names = {loc.id: loc.name for loc in self.data.locations} if self.data is not None else {}
        return [
            (e.last_check.normalized, names.get(e.to_point().location_id or -1, ""), e.primary.isChecked())
            for e in self.editors[ContactKind.PHONE.value]
            if e.last_check.ok
        ]

    @Slot()
    def on_edited(self) -> None:
        """Something changed: update Save, and re-check cross-household e-mails shortly."""
        self.warning_timer.start()
        self.channels_editor.set_phones(self._phones(), self.region)
        self._update_save()

    def _update_save(self) -> None:
        problems = self.problems()
        self.save_button.setEnabled(self.data is not None and not self._saving and self.dirty and not problems)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            text = f"Fix first: {problems[0]}{more}"
            self.save_button.setToolTip(text)
            _set_state(self.hint, "error", text)
        else:
            self.save_button.setToolTip("Save all contact information (Ctrl+S)")
            _set_state(self.hint, "ok", "")

    def _show_banner(self, state: str, text: str) -> None:
        _set_state(self.banner, state, text)

    # --- warnings ---------------------------------------------------------------------------------------------
    @Slot()
    def on_check_warnings(self) -> None:
        """Ask which valid e-mails are held in other households (off the GUI thread)."""
        if self.data is None or self.ctx.is_stopped:
            return
        emails = [e.last_check.normalized for e in self.editors["email"] if e.last_check.ok]
        if not emails:
            self.on_warnings({})
            return
        self.ctx.run(functools.partial(email_warnings, self.ctx.db, self.patron_id, emails), self.on_warnings)

    def on_warnings(self, found: dict[str, tuple[PatronRef, ...]]) -> None:
        """Show each e-mail's warning under it (a warning, not a block)."""
        if not shiboken6.isValid(self):
            return
        for editor in self.editors["email"]:
            key = email_key(editor.last_check.normalized) if editor.last_check.ok else ""
            others = found.get(key, ())
            editor.set_warning(warning_text(editor.value.text().strip(), others) if others else "")

    # --- saving -----------------------------------------------------------------------------------------------
    @Slot()
    def on_save(self) -> None:
        """Save everything (refused when a field is invalid or another workstation saved first)."""
        if self.data is None or self._saving or not self.save_button.isEnabled():
            return
        self._saving = True
        self._update_save()
        self._show_banner("ok", "Saving…")
        job = functools.partial(
            save_card,
            self.ctx.db,
            self.patron_id,
            self.data.version_id,
            self.points(),
            self.address(),
            methods=self.methods(),
            channels=self._chosen_channels(),
            sms_carrier=self.channels_editor.carrier() if self.channels_editor.carrier_changed else None,
            staff=self.ctx.staff_name,
            region=self.region,
        )
        self.ctx.run(job, self.on_saved, self.on_save_failed)

    def _chosen_channels(self) -> dict[NoticeEvent, Preference] | None:
        """The events to save: those changed on the card (an event following the method sends the method's
        channels, which the service stores as no row)."""
        channels = self.channels_editor.channels()
        return {event: channels[event] for event in self.channels_editor.changed_events()} or None

    def on_saved(self, result: SaveResult) -> None:
        """Saved: tell every window and close."""
        self._saving = False
        self.ctx.changed.emit("patrons")
        if result.regrouped:
            self.ctx.changed.emit("requests")  # the patron's waiting requests changed group / notices
            self.ctx.changed.emit("notifications")
        if shiboken6.isValid(self):
            if result.regrouped:
                self.regrouped.emit(" ".join(result.regrouped))
            self.saved.emit(list(result.warnings))
            self.accept()

    def on_save_failed(self, error: object) -> None:
        """Refused: keep everything typed, say why, mark the fields concerned."""
        if not shiboken6.isValid(self):
            return
        self._saving = False
        if isinstance(error, ValidationError):
            editors = self.all_editors()
            for key, problem in error.problems.items():
                if key.isdigit() and int(key) < len(editors):
                    editors[int(key)].set_server_problem(problem)
                elif key.startswith("address."):
                    _set_state(self.address_message, "error", f"{key.split('.', 1)[1]}: {problem}")
                elif key.startswith("methods."):
                    _set_state(self.methods_message, "error", problem)
            self.channels_editor.set_server_problems(
                {key.split(".", 1)[1]: p for key, p in error.problems.items() if key.startswith("channels.")}
            )
            self._show_banner("error", str(error))
        elif isinstance(error, ConcurrentEditError):
            self._show_banner("error", str(error))
            self.reload_button.show()
            self.reload_button.setDefault(True)  # Enter reloads; saving again would be refused again
            self.reload_button.setFocus()
        else:
            self._show_banner("error", f"Not saved: {error}. What you typed is still here.")
        self._update_save()

    # --- closing ----------------------------------------------------------------------------------------------
    def reject(self) -> None:
        """Close (Esc, Close, the window's X): ask first when there are unsaved changes, so nothing is lost."""
        if self.dirty and not self._discarding and not self._saving:
            name = self.data.patron_name if self.data is not None else "the patron"
            box = QMessageBox(
                QMessageBox.Icon.Question,
                "Unsaved changes",
                f"Discard your changes to {name}'s contact information?",
                QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
                self,
            )
            box.setObjectName("discardChangesBox")
            box.setDefaultButton(QMessageBox.StandardButton.Cancel)
            box.finished.connect(self.on_discard_answered)
            self.discard_box = box
            box.open()
            return
        super().reject()

    @Slot(int)
    def on_discard_answered(self, _result: int) -> None:
        """Discard closes the card; Cancel keeps editing."""
        box, self.discard_box = self.discard_box, None
        if box is None:
            return
        discard = box.standardButton(box.clickedButton()) == QMessageBox.StandardButton.Discard
        box.deleteLater()
        if discard:
            self._discarding = True
            self.reject()

    def done(self, result: int) -> None:
        """Remember where the card was; stop the card's timer and drop its pending reads (it is closing)."""
        save_geometry(self, "contactCard/geometry")
        self.warning_timer.stop()
        if not self._saving:  # a save in flight still reports back (its ``changed`` tells the other windows)
            self.ctx.release(self)
        super().done(result)
