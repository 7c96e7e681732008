"""SQLAlchemy 2.x typed models.

Stored strings for statuses and methods are the domain enums' values (ILLiad's words), so a DBA reading the
tables sees what staff see. Timestamps are UTC (:class:`UTCDateTime`).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from desktop.db.types import UTCDateTime
from desktop.domain.clock import utcnow
from desktop.domain.contacts import person_name
from desktop.domain.methods import request_title

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints the same on every backend."""

    metadata = MetaData(naming_convention=NAMING)


class Household(Base):
    """Patrons who live together; an e-mail shared inside one household is fine, across households it is not."""

    __tablename__ = "households"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")

    patrons: Mapped[list[Patron]] = relationship(back_populates="household")


class Location(Base):
    """The Locations code table (Home, Work, Cell, …) and which contact kinds each allows.

    Attributes:
        kinds: comma-separated permissions from ``desktop.domain.contacts.ALL_PERMISSIONS``.
        default_for: comma-separated kinds for which this location is preselected on a new field.
    """

    __tablename__ = "locations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    kinds: Mapped[str] = mapped_column(String(100), default="email,phone,fax,web,address")
    default_for: Mapped[str] = mapped_column(String(100), default="")


class PickupLocation(Base):
    """A desk where patrons collect items; its delay holds requests in transit before patrons are told."""

    __tablename__ = "pickup_locations"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(Text, default="")
    routing_delay_minutes: Mapped[int] = mapped_column(Integer, default=0)
    hold_days: Mapped[int] = mapped_column(Integer, default=10)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Patron(Base):
    """A library user (ILLiad "customer")."""

    __tablename__ = "patrons"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="", index=True)
    status: Mapped[str] = mapped_column(String(60), default="")
    department: Mapped[str] = mapped_column(String(200), default="")
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"), index=True)
    notification_method: Mapped[str] = mapped_column(String(20), default="E-Mail")
    delivery_method: Mapped[str] = mapped_column(String(30), default="Hold for Pickup")
    pickup_location_id: Mapped[int | None] = mapped_column(ForeignKey("pickup_locations.id"))
    address1: Mapped[str] = mapped_column(String(200), default="")
    address2: Mapped[str] = mapped_column(String(200), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    state: Mapped[str] = mapped_column(String(100), default="")
    zip: Mapped[str] = mapped_column(String(20), default="")
    #: ILLiad's Users.Country; empty for a domestic address (notices print it only when set).
    country: Mapped[str] = mapped_column(String(100), default="", server_default="")
    #: The mobile carrier whose e-mail-to-SMS gateway reaches the patron (migration 0019); empty: unknown.
    sms_carrier: Mapped[str] = mapped_column(String(60), default="", server_default="")
    web_password_hash: Mapped[str | None] = mapped_column(String(255))
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    version_id: Mapped[int] = mapped_column(Integer, default=1)

    household: Mapped[Household | None] = relationship(back_populates="patrons")
    pickup_location: Mapped[PickupLocation | None] = relationship()
    contact_points: Mapped[list[ContactPoint]] = relationship(
        back_populates="patron", cascade="all, delete-orphan", order_by="ContactPoint.position"
    )

    __mapper_args__ = {"version_id_col": version_id}

    @property
    def full_name(self) -> str:
        """ "First Last", or the user name when both are blank."""
        return person_name(self.first_name, self.last_name, self.username)


class ContactPoint(Base):
    """One e-mail, phone, fax or web site of a patron (a row of the Contact Info tab)."""

    __tablename__ = "contact_points"

    id: Mapped[int] = mapped_column(primary_key=True)
    patron_id: Mapped[int] = mapped_column(ForeignKey("patrons.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    value: Mapped[str] = mapped_column(String(2000))
    normalized: Mapped[str] = mapped_column(String(2000))
    extension: Mapped[str] = mapped_column(String(10), default="")
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When mail to this e-mail address bounced (a hard bounce, or a repeated soft one); ``None``: not flagged.
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The report's status and diagnostic ("550 5.1.1 user unknown"), shown with the flag (migration 0011).
    bounce_reason: Mapped[str] = mapped_column(String(500), default="", server_default="")
    #: Soft bounces (4.x.x) since the flag was last cleared; the second one flags the address.
    soft_bounces: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    patron: Mapped[Patron] = relationship(back_populates="contact_points")
    location: Mapped[Location | None] = relationship()

    __table_args__ = (
        # The database, not only the code, guarantees one primary per patron and kind.
        Index(
            "uq_contact_points_one_primary",
            "patron_id",
            "kind",
            unique=True,
            sqlite_where=text("is_primary"),
            postgresql_where=text("is_primary"),
        ),
        Index("ix_contact_points_patron", "patron_id", "kind"),
        Index("ix_contact_points_normalized", "kind", "normalized"),
    )


class Request(Base):
    """A borrowing request (ILLiad "transaction")."""

    __tablename__ = "requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    transaction_number: Mapped[int] = mapped_column(Integer, unique=True)
    patron_id: Mapped[int] = mapped_column(ForeignKey("patrons.id"))
    request_type: Mapped[str] = mapped_column(String(10), default="Loan")
    loan_title: Mapped[str] = mapped_column(String(500), default="")
    loan_author: Mapped[str] = mapped_column(String(300), default="")
    photo_journal_title: Mapped[str] = mapped_column(String(500), default="")
    photo_article_title: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(60))
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    transaction_date: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_date: Mapped[date | None] = mapped_column(Date)
    call_number: Mapped[str] = mapped_column(String(100), default="")
    lending_library: Mapped[str] = mapped_column(String(200), default="")
    pickup_location_id: Mapped[int | None] = mapped_column(ForeignKey("pickup_locations.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    version_id: Mapped[int] = mapped_column(Integer, default=1)

    patron: Mapped[Patron] = relationship()
    pickup_location: Mapped[PickupLocation | None] = relationship()
    tracking: Mapped[list[Tracking]] = relationship(back_populates="request", order_by="Tracking.id")

    __mapper_args__ = {"version_id_col": version_id}
    __table_args__ = (
        Index("ix_requests_status_tn", "status", "transaction_number"),
        Index("ix_requests_patron", "patron_id"),
        Index("ix_requests_updated_at", "updated_at"),  # the main window's change marker (migration 0004)
        Index("ix_requests_status_changed", "status", "status_changed_at"),  # the hold shelf's scan (0010)
    )

    @property
    def title(self) -> str:
        """The title staff recognise: the loan title, or the article title for copies."""
        return request_title(self.request_type, self.loan_title, self.photo_article_title, self.photo_journal_title)


class Tracking(Base):
    """One status change of a request: from, to, who, when (ILLiad's Tracking tab)."""

    __tablename__ = "tracking"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"))
    from_status: Mapped[str | None] = mapped_column(String(60))
    to_status: Mapped[str] = mapped_column(String(60))
    changed_by: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str] = mapped_column(String(500), default="")

    request: Mapped[Request] = relationship(back_populates="tracking")

    __table_args__ = (Index("ix_tracking_request", "request_id", "id"),)


class RequestNote(Base):
    """A note on a request (ILLiad's Notes): staff or patron text, who added it and when.

    Attributes:
        source_key: where an imported note came from (``illiad:<Id>``), so importing the same export again adds
            nothing; empty for notes written in Callslip.
    """

    __tablename__ = "request_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"))
    noted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str] = mapped_column(Text)
    added_by: Mapped[str] = mapped_column(String(100))
    note_type: Mapped[str] = mapped_column(String(20), default="Staff")
    source_key: Mapped[str | None] = mapped_column(String(100), unique=True)

    __table_args__ = (Index("ix_request_notes_request", "request_id", "id"),)


class NoticeTemplate(Base):
    """A notification template (Customization Manager); staff edits live here, defaults in ``templates/``.

    Attributes:
        channel: ``email`` or ``print``.
        deleted: a deleted template means that notice is not sent (ILLiad's behaviour), but the row stays so the
            default can be restored and history kept.
    """

    __tablename__ = "notice_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    channel: Mapped[str] = mapped_column(String(10), default="email")
    description: Mapped[str] = mapped_column(String(500), default="")
    from_name: Mapped[str] = mapped_column(String(200), default="")
    from_address: Mapped[str] = mapped_column(String(300), default="")
    to_address: Mapped[str] = mapped_column(String(500), default="")
    cc: Mapped[str] = mapped_column(String(500), default="")
    bcc: Mapped[str] = mapped_column(String(500), default="")
    subject: Mapped[str] = mapped_column(String(500), default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    #: The SMS part of the template (issue 18): plain text; empty means this notice has no text message.
    body_sms: Mapped[str] = mapped_column(Text, default="")
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_by: Mapped[str] = mapped_column(String(100), default="System")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version_id: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version_id}


class TemplateRevision(Base):
    """A saved version of a template: who changed it and when, with the full text (JSON snapshot)."""

    __tablename__ = "template_revisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("notice_templates.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


#: SQL: a notice a sender may claim once due: waiting, and its own message (not riding in a digest leader's). The
#: partial index ``ix_notifications_claimable`` holds these rows; a claim states the same terms, with the states
#: written out, so that both databases can see the index applies.
CLAIMABLE_CONDITION = "state IN ('pending', 'retrying') AND digest_leader_id IS NULL"


class Notification(Base):
    """A notice in the outbox and its history (e-mail now; the channel column keeps SMS open).

    ``dedupe_key`` makes "exactly one notice per arrival" a database guarantee: for an arrival it is
    ``arrival:<request id>:<template>:<tracking id>``, so a later return to the status makes a new notice.
    ``lease_owner``/``lease_until`` are the claim of the System Manager that is sending it.
    """

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(10), default="email")
    template_name: Mapped[str] = mapped_column(String(100))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"))
    patron_id: Mapped[int | None] = mapped_column(ForeignKey("patrons.id", ondelete="CASCADE"))
    tracking_id: Mapped[int | None] = mapped_column(ForeignKey("tracking.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(20), default="pending")
    to_address: Mapped[str] = mapped_column(String(500), default="")
    cc: Mapped[str] = mapped_column(String(500), default="")
    bcc: Mapped[str] = mapped_column(String(500), default="")
    from_address: Mapped[str] = mapped_column(String(300), default="")
    subject: Mapped[str] = mapped_column(String(500), default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str] = mapped_column(String(300), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_reply: Mapped[str] = mapped_column(Text, default="")
    #: Data needed only until sending (a reset link's token); cleared once the notice is done.
    secret: Mapped[str | None] = mapped_column(String(500))
    #: The notice whose message this one rides in (a digest of several items; migration 0019); None: its own.
    digest_leader_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    attempts_log: Mapped[list[NotificationAttempt]] = relationship(
        back_populates="notification", cascade="all, delete-orphan", order_by="NotificationAttempt.id"
    )

    __table_args__ = (
        Index("ix_notifications_due", "state", "next_attempt_at"),
        Index("ix_notifications_request", "request_id"),
        Index("ix_notifications_message_id", "message_id"),  # a bounce is matched by it (migration 0011)
        # Riders only (migration 0021): the look-ups it serves name a leader, and NULL entries let PostgreSQL walk
        # it for a claim's ``digest_leader_id IS NULL`` instead of reading the claimable index in order.
        Index(
            "ix_notifications_digest_leader",
            "digest_leader_id",
            sqlite_where=text("digest_leader_id IS NOT NULL"),
            postgresql_where=text("digest_leader_id IS NOT NULL"),
        ),
        # The notices a sender may claim, in the claim's order (migration 0021): a claim reads the first rows of
        # its channel instead of sorting every due notice.
        Index(
            "ix_notifications_claimable",
            "channel",
            "next_attempt_at",
            "id",
            sqlite_where=text(CLAIMABLE_CONDITION),
            postgresql_where=text(CLAIMABLE_CONDITION),
        ),
    )


class NotificationAttempt(Base):
    """One delivery attempt of a notice: when, by which System Manager, and the server's reply."""

    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    worker: Mapped[str] = mapped_column(String(200), default="")
    outcome: Mapped[str] = mapped_column(String(20))
    reply: Mapped[str] = mapped_column(Text, default="")

    notification: Mapped[Notification] = relationship(back_populates="attempts_log")


class BounceReport(Base):
    """A bounce report the System Manager handled (any kind), so that no report is ever counted twice.

    ``report_key`` is the report's own Message-ID (or a hash of its bytes when it has none): two System
    Managers reading the same mailbox both try to insert it, and only one succeeds.
    """

    __tablename__ = "bounce_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_key: Mapped[str] = mapped_column(String(300), unique=True)
    notice_id: Mapped[int | None] = mapped_column(ForeignKey("notifications.id", ondelete="SET NULL"))
    address: Mapped[str] = mapped_column(String(300), default="", server_default="")
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="", server_default="")
    diagnostic: Mapped[str] = mapped_column(String(500), default="", server_default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    handled_by: Mapped[str] = mapped_column(String(200), default="", server_default="")


class PasswordResetToken(Base):
    """A single-use web password reset token; only its SHA-256 hash is stored."""

    __tablename__ = "password_reset_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    patron_id: Mapped[int] = mapped_column(ForeignKey("patrons.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(300))
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CallLogEntry(Base):
    """One phone call to a patron about a request (Reached / Left voicemail / No answer)."""

    __tablename__ = "call_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"), index=True)
    outcome: Mapped[str] = mapped_column(String(30))
    note: Mapped[str] = mapped_column(String(1000), default="")
    staff: Mapped[str] = mapped_column(String(100))
    called_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PatronHistory(Base):
    """One change to a patron's notification or delivery method: from, to, who, when (the patron's Tracking)."""

    __tablename__ = "patron_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    patron_id: Mapped[int] = mapped_column(ForeignKey("patrons.id", ondelete="CASCADE"), index=True)
    field: Mapped[str] = mapped_column(String(40))
    old_value: Mapped[str] = mapped_column(String(200), default="")
    new_value: Mapped[str] = mapped_column(String(200), default="")
    changed_by: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str] = mapped_column(String(500), default="")


class PatronChannelPreference(Base):
    """A patron's chosen channels for one kind of notice, in order ("SMS>E-Mail>Phone"; issue 18).

    No row means the patron follows their single notification method (``desktop.domain.channels``), so the table
    starts empty and nobody's behaviour changes until staff choose.
    """

    __tablename__ = "patron_channel_preferences"

    patron_id: Mapped[int] = mapped_column(ForeignKey("patrons.id", ondelete="CASCADE"), primary_key=True)
    event: Mapped[str] = mapped_column(String(40), primary_key=True)
    channels: Mapped[str] = mapped_column(String(60))
    updated_by: Mapped[str] = mapped_column(String(100), default="System")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SystemSetting(Base):
    """A setting shared by every workstation (poll interval, library name, …), stored as JSON text."""

    __tablename__ = "system_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(100), default="System")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


__all__ = [
    "Base",
    "BounceReport",
    "CallLogEntry",
    "ContactPoint",
    "Household",
    "Location",
    "NoticeTemplate",
    "Notification",
    "NotificationAttempt",
    "PasswordResetToken",
    "Patron",
    "PatronChannelPreference",
    "PatronHistory",
    "PickupLocation",
    "Request",
    "RequestNote",
    "SystemSetting",
    "TemplateRevision",
    "Tracking",
]
