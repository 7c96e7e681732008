"""The Send E-mail preview (``sendEmailDialog``): the chosen template rendered for this request, before it goes.

Staff read exactly what the patron will get (To, Subject, text) and where the request moves once it is sent;
Send is offered only when the template renders. The dialog reads nothing itself: the request form hands it the
plan its worker made (:class:`desktop.services.requests.email_actions.EmailPlan`).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from desktop.services.requests.email_actions import EmailPlan


def _label(text: str, name: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class SendEmailDialog(QDialog):
    """Preview of one hand-sent e-mail with Send and Cancel.

    Attributes:
        plan: what will be sent and where the request moves.
    """

    def __init__(self, plan: EmailPlan, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plan = plan
        self.setObjectName("sendEmailDialog")
        self.setAccessibleName("Send e-mail preview")
        self.setWindowTitle(f"Send “{plan.template_name}” — request {plan.transaction_number}")
        self.resize(640, 520)
        rendered = plan.preview.rendered if plan.preview.ok else None
        form = QFormLayout()
        if rendered is not None:
            form.addRow("To:", _label(", ".join(rendered.to), "previewTo"))
            form.addRow("Subject:", _label(rendered.subject, "previewSubject"))
        if plan.route_to:
            after = f"The request moves from {plan.status} to {plan.route_to}, with Tracking."
        else:
            after = f"The request stays at {plan.status}" + (f" ({plan.route_note})." if plan.route_note else ".")
        self.after_label = _label(after, "previewAfterSending")
        form.addRow("After sending:", self.after_label)
        self.body = QPlainTextEdit()
        self.body.setObjectName("previewBody")
        self.body.setAccessibleName("Text of the e-mail")
        self.body.setReadOnly(True)
        if rendered is not None:
            self.body.setPlainText(rendered.body_text)
        else:
            self.body.setPlainText(
                "This template cannot be sent for this request:\n\n"
                + "\n".join(str(problem) for problem in plan.preview.problems)
                + "\n\nFix it in the Customization Manager (Notification Templates)."
            )
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.send_button = self.buttons.addButton("&Send", QDialogButtonBox.ButtonRole.AcceptRole)
        self.send_button.setObjectName("sendEmailButton")
        self.send_button.setAccessibleName("Send this e-mail")
        self.send_button.setEnabled(rendered is not None)
        self.send_button.setDefault(rendered is not None)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.body, 1)
        layout.addWidget(self.buttons)
