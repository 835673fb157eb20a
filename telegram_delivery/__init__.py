"""Telegram delivery: the outbox, the relay from the event log, the paced sender, cards and texts (docs/telegram.md)."""
