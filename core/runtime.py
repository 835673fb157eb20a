"""Process-wide configuration the domain needs (set once at start by each entry point)."""

from __future__ import annotations

from core.settings import Settings

_settings: Settings = Settings()


def configure(settings: Settings) -> None:
    global _settings
    _settings = settings


def settings() -> Settings:
    return _settings
