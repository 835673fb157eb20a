"""E-mail, both ways (optional: only with SMTP_URL). Out: the notifier turns events into
mail in the outbox (db.models.MailOutbox), the sender drains it over SMTP. In: an SMTP
listener (aiosmtpd) takes replies to req-<id>-<secret>@MAIL_REPLY_DOMAIN into the thread.
See docs/integrations.md."""
