"""The hold shelf's part of Customization Manager → Routing: each pickup location's reminder schedule, send hour,
days of the week and expired notice, and the closed-days calendar shared by every workstation.

Reads and saves through :mod:`desktop.services.admin.shelf_settings` off the GUI thread; a bad entry (a date that is
not one, a repeated step, no weekday) is refused with a one-line message naming it, and nothing is saved.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import shiboken6
from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.domain.shelf import (
    MAX_STEP_DAYS,
    WEEKDAY_NAMES,
    ClosedDays,
    ReminderStep,
    ShelfError,
    ShelfPolicy,
    StepKind,
)
from desktop.services.admin.shelf_settings import (
    DEFAULT_POLICY,
    ShelfEditorData,
    ShelfSettings,
    closed_to_json,
    load_shelf_editor,
    parse_closed_days,
    save_shelf_settings,
)
from desktop.ui.context import AppContext

KIND_LABELS = {StepKind.AFTER_NOTIFIED: "days after notification", StepKind.BEFORE_END: "days before the hold ends"}


class ShelfPolicyEditor(QGroupBox):
    """Hold-shelf policy per pickup location and the closed days (``shelfPolicyEditor``)."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__("Hold shelf: pickup reminders and closed days", parent)
        self.ctx = ctx
        self.setObjectName("shelfPolicyEditor")
        self._base: ShelfSettings | None = None
        self._policies: dict[int, ShelfPolicy] = {}
        self._shown: int | None = None
        self.pickupCombo = QComboBox(self)
        self.pickupCombo.setObjectName("shelfPickupCombo")
        self.pickupCombo.setAccessibleName("Pickup location whose shelf policy is shown")
        self.pickupCombo.currentIndexChanged.connect(self.on_pickup_changed)
        self.stepsTable = QTableWidget(0, 3, self)
        self.stepsTable.setTabKeyNavigation(False)  # Tab leaves the table
        self.stepsTable.setObjectName("shelfStepsTable")
        self.stepsTable.setAccessibleName("Reminder schedule")
        self.stepsTable.setHorizontalHeaderLabels(["Days", "Counted", "Template (empty: the default)"])
        self.stepsTable.verticalHeader().setVisible(False)
        self.stepsTable.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.stepsTable.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.stepsTable.setMaximumHeight(130)
        self.addStepButton = QPushButton("&Add reminder", self)
        self.addStepButton.setObjectName("addShelfStepButton")
        self.addStepButton.clicked.connect(lambda: self._add_step(ReminderStep(StepKind.BEFORE_END, 2)))
        self.removeStepButton = QPushButton("Re&move reminder", self)
        self.removeStepButton.setObjectName("removeShelfStepButton")
        self.removeStepButton.clicked.connect(self.remove_step)
        self.sendHourSpin = QSpinBox(self)
        self.sendHourSpin.setObjectName("shelfSendHourSpin")
        self.sendHourSpin.setAccessibleName("Hour of day reminders go out")
        self.sendHourSpin.setRange(0, 23)
        self.sendHourSpin.setSuffix(":00")
        self.weekdayChecks: list[QCheckBox] = []
        days = QHBoxLayout()
        for number, name in enumerate(WEEKDAY_NAMES):
            check = QCheckBox(name, self)
            check.setObjectName(f"shelfWeekday{number}")
            self.weekdayChecks.append(check)
            days.addWidget(check)
        days.addStretch(1)
        # E-mail patrons get the "Pickup Expired" e-mail; Phone and Mail patrons a call or letter in Contact Customers.
        self.expiredCheck = QCheckBox("Tell the patron when the hold ends (e-mail, or a call or letter to make)", self)
        self.expiredCheck.setObjectName("shelfExpiredCheck")
        self.closedDatesEdit = QPlainTextEdit(self)
        self.closedDatesEdit.setObjectName("closedDatesEdit")
        self.closedDatesEdit.setAccessibleName("Closed dates, one per line, YYYY-MM-DD")
        self.closedDatesEdit.setPlaceholderText("2026-12-24\n2026-12-31")
        self.closedDatesEdit.setMaximumHeight(80)
        self.closedYearlyEdit = QPlainTextEdit(self)
        self.closedYearlyEdit.setObjectName("closedYearlyEdit")
        self.closedYearlyEdit.setAccessibleName("Closed every year, one per line, MM-DD")
        self.closedYearlyEdit.setPlaceholderText("12-25\n01-01")
        self.closedYearlyEdit.setMaximumHeight(80)
        self.timezoneEdit = QLineEdit(self)
        self.timezoneEdit.setObjectName("shelfTimezoneEdit")
        self.timezoneEdit.setPlaceholderText("this computer's time zone (or e.g. Europe/Berlin)")
        self.saveButton = QPushButton("Save &hold shelf", self)
        self.saveButton.setObjectName("saveShelfButton")
        self.saveButton.clicked.connect(self.save)
        self.status = QLabel(self)
        self.status.setObjectName("shelfStatus")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Pickup location:", self.pickupCombo)
        form.addRow("Reminders:", self.stepsTable)
        step_buttons = QHBoxLayout()
        step_buttons.addWidget(self.addStepButton)
        step_buttons.addWidget(self.removeStepButton)
        step_buttons.addStretch(1)
        form.addRow("", step_buttons)
        form.addRow("Send from:", self.sendHourSpin)
        form.addRow("On:", days)
        form.addRow("", self.expiredCheck)
        closed = QHBoxLayout()
        closed.addWidget(self.closedDatesEdit)
        closed.addWidget(self.closedYearlyEdit)
        form.addRow("Closed (dates | every year):", closed)
        form.addRow("Time zone:", self.timezoneEdit)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.saveButton)
        layout.addLayout(bottom)
        self.reload()

    # ------------------------------------------------------------------------------------------------ loading

    @Slot()
    def reload(self) -> None:
        """Read the shelf settings (off the GUI thread)."""
        self.saveButton.setEnabled(False)
        self.ctx.run(partial(load_shelf_editor, self.ctx.db), self.on_loaded, self.on_failed)

    def on_loaded(self, data: ShelfEditorData) -> None:
        """Show what was read."""
        if not shiboken6.isValid(self):
            return
        self._base = data.settings
        self._policies = dict(data.settings.policies)
        self._shown = None
        self.pickupCombo.blockSignals(True)
        self.pickupCombo.clear()
        for pickup_id, name in data.pickups:
            self.pickupCombo.addItem(name, pickup_id)
        self.pickupCombo.blockSignals(False)
        closed = closed_to_json(data.settings.closed)
        self.closedDatesEdit.setPlainText("\n".join(closed["dates"]))
        self.closedYearlyEdit.setPlainText("\n".join(closed["yearly"]))
        self.timezoneEdit.setText(data.settings.timezone)
        self.on_pickup_changed()
        self.saveButton.setEnabled(True)

    def on_failed(self, error: object) -> None:
        """Reading or saving failed: say why, keep the edits."""
        if shiboken6.isValid(self):
            self.status.setText(f"⚠ {error}")
            self.saveButton.setEnabled(self._base is not None)

    # ------------------------------------------------------------------------------------------------ editing

    def _add_step(self, step: ReminderStep) -> None:
        row = self.stepsTable.rowCount()
        self.stepsTable.insertRow(row)
        self.stepsTable.setItem(row, 0, QTableWidgetItem(str(step.days)))
        kind = QComboBox(self.stepsTable)
        for value, label in KIND_LABELS.items():
            kind.addItem(label, value.value)
        kind.setCurrentIndex(list(KIND_LABELS).index(step.kind))
        self.stepsTable.setCellWidget(row, 1, kind)
        self.stepsTable.setItem(row, 2, QTableWidgetItem(step.template))

    @Slot()
    def remove_step(self) -> None:
        """Remove the highlighted reminder."""
        row = self.stepsTable.currentRow()
        if row >= 0:
            self.stepsTable.removeRow(row)

    def _show(self, policy: ShelfPolicy) -> None:
        self.stepsTable.setRowCount(0)
        for step in policy.steps:
            self._add_step(step)
        self.sendHourSpin.setValue(policy.send_hour)
        for number, check in enumerate(self.weekdayChecks):
            check.setChecked(number in policy.weekdays)
        self.expiredCheck.setChecked(policy.expired_notice)

    def shown_policy(self) -> ShelfPolicy:
        """The policy as edited on screen; :class:`ShelfError` naming the first bad entry."""
        steps: list[ReminderStep] = []
        for row in range(self.stepsTable.rowCount()):
            days_item, template_item = self.stepsTable.item(row, 0), self.stepsTable.item(row, 2)
            text = days_item.text().strip() if days_item else ""
            try:
                days = int(text)
            except ValueError:
                raise ShelfError(f"reminder {row + 1}: the days must be a whole number, not {text[:20]!r}") from None
            if not 0 <= days <= MAX_STEP_DAYS:
                raise ShelfError(f"reminder {row + 1}: the days must be from 0 to {MAX_STEP_DAYS}, not {days}")
            kind_box = self.stepsTable.cellWidget(row, 1)
            kind = StepKind(kind_box.currentData()) if isinstance(kind_box, QComboBox) else StepKind.BEFORE_END
            steps.append(ReminderStep(kind, days, template_item.text().strip() if template_item else ""))
        policy = ShelfPolicy(
            steps=tuple(steps),
            send_hour=self.sendHourSpin.value(),
            weekdays=frozenset(n for n, check in enumerate(self.weekdayChecks) if check.isChecked()),
            expired_notice=self.expiredCheck.isChecked(),
        )
        policy.check()
        return policy

    def _keep_shown(self) -> bool:
        if self._shown is None:
            return True
        try:
            policy = self.shown_policy()
        except ShelfError as exc:
            self.status.setText(f"⚠ {self.pickupCombo.itemText(self._index_of(self._shown))}: {exc}")
            return False
        if policy != self._policies.get(self._shown, DEFAULT_POLICY):
            self._policies[self._shown] = policy
        return True

    def _index_of(self, pickup_id: int) -> int:
        return max(self.pickupCombo.findData(pickup_id), 0)

    @Slot()
    def on_pickup_changed(self) -> None:
        """Show another location's policy (the one shown is kept if it is valid, else the choice goes back)."""
        wanted = self.pickupCombo.currentData()
        if not self._keep_shown():
            self.pickupCombo.blockSignals(True)
            self.pickupCombo.setCurrentIndex(self._index_of(self._shown or 0))
            self.pickupCombo.blockSignals(False)
            return
        self._shown = int(wanted) if wanted is not None else None
        self._show(self._policies.get(self._shown, DEFAULT_POLICY) if self._shown is not None else DEFAULT_POLICY)

    def edited(self) -> ShelfSettings:
        """Every location's policy and the calendar as edited; :class:`ShelfError` for a bad entry."""
        if self._base is None:
            raise ShelfError("the shelf settings are not loaded yet")
        if not self._keep_shown():
            raise ShelfError(self.status.text().lstrip("⚠ "))
        closed: ClosedDays = parse_closed_days(self.closedDatesEdit.toPlainText(), self.closedYearlyEdit.toPlainText())
        return replace(
            self._base, policies=dict(self._policies), closed=closed, timezone=self.timezoneEdit.text().strip()
        )

    @Slot()
    def save(self) -> None:
        """Save what changed (refused with the reason when an entry is bad or another workstation saved first)."""
        try:
            new = self.edited()
        except ShelfError as exc:
            self.status.setText(f"⚠ Not saved: {exc}")
            return
        assert self._base is not None
        self.saveButton.setEnabled(False)
        job = partial(save_shelf_settings, self.ctx.db, self._base, new, changed_by=self.ctx.staff_name)
        self.ctx.run(job, self.on_saved, self.on_failed)

    def on_saved(self, settings: ShelfSettings) -> None:
        """Saved: this is the new base; every System Manager uses it from its next cycle."""
        if not shiboken6.isValid(self):
            return
        self._base = settings
        self._policies = dict(settings.policies)
        self.saveButton.setEnabled(True)
        self.status.setText("Hold shelf saved: every workstation's System Manager uses it from its next cycle.")
        self.ctx.changed.emit("settings")
