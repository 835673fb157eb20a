"""The Telegram relay (telegram_delivery.relay.consumer)."""

from telegram_delivery.relay.consumer import CURSOR_NAME, Relay

__all__ = ["CURSOR_NAME", "Relay"]
