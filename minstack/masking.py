"""Keep secrets out of every log line and every console line.

All passwords are registered once, right after the settings are loaded; every
log handler and the console print through :func:`mask`.  Variants that tools
print instead of the raw value (URL-quoted forms, as in a database URL) are
registered too.
"""
from __future__ import annotations

import logging
import threading
import urllib.parse

MASK = "******"

_lock = threading.Lock()
_secrets: list[str] = []


def register(*values: str) -> None:
    """Add secrets; each is masked with its URL-quoted forms."""
    with _lock:
        for value in values:
            if not value or len(value) < 4:  # masking "a" would shred every line
                continue
            for form in {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}:
                if form not in _secrets:
                    _secrets.append(form)
        _secrets.sort(key=len, reverse=True)  # longest first: a form may contain another


def clear() -> None:
    with _lock:
        _secrets.clear()


def mask(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class MaskingFilter(logging.Filter):
    """Masks the fully formatted message of every record that passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        return True
