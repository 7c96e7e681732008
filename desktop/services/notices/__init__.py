"""Notices: everything between "a request reached a status" and "the patron was told".

The outbox and its claims, the System Manager cycle, the SMTP transport and its back-off, recording each result
before the next message is accepted, templates and their administration, wake-ups, routing, and why notices wait.
New channels (SMS), reminders and shelf expiry, and bounces belong here.

Offers (``__all__``): ``outbox`` (notices, claims, retries), ``dispatch`` (one System Manager cycle),
``mailer`` (SMTP transport, message building), ``templates`` (rendering), ``template_admin`` (editing,
checking, Send Test), ``notice_context`` (plain-data template contexts), ``wakeup`` (LISTEN/NOTIFY),
``delivery_problems`` and ``delivery_health`` (why notices wait, for the desk's banner), ``mail_addresses``
(RFC 5322 address lists), ``sender_identity`` (who a notice is from), ``template_files`` (templates as TOML files),
``bounces`` (matching a bounce to its notice, flags), ``bounce_parsing`` (RFC 3464 reports and others),
``bounce_mailbox`` (reading the bounce mailbox over IMAP), ``shelf`` (pickup reminders and shelf expiry),
``sms_transports`` (SMS providers and e-mail-to-SMS gateways), ``fallback`` (a notice that failed for good moves
on to the patron's next channel).
Inside only: ``digest`` (a patron's arrivals close together as one message), ``result_writer``,
``routing``, ``smtp_backoff``, ``template_limits``, ``sms_dispatch`` (a notice's text, the SMS transport chosen
in Settings, quiet hours: the SMS side of the cycle).
"""

__all__ = [
    "bounce_mailbox",
    "bounce_parsing",
    "bounces",
    "delivery_health",
    "delivery_problems",
    "dispatch",
    "fallback",
    "mail_addresses",
    "mailer",
    "notice_context",
    "outbox",
    "sender_identity",
    "shelf",
    "sms_transports",
    "template_admin",
    "template_files",
    "templates",
    "wakeup",
]
