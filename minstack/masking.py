"""Keep secrets out of every log line and every console line.

All passwords are registered once, right after the settings are loaded; every
log handler and the console print through :func:`mask`.  Variants that tools
print instead of the raw value (URL-quoted forms, as in a database URL) are
registered too.
"""
from __future__ import annotations

import json
import logging
import shlex
import threading
import urllib.parse

MASK = "******"

_lock = threading.Lock()
_secrets: list[str] = []


def named_forms(value: str) -> dict[str, str]:
    """The ways a secret is written where it leaks, by name: as it is, URL-encoded (in a database
    or transport URL), JSON-escaped (in an API body or a JSON log) and shell-quoted (in a command
    line a tool prints)."""
    return {"raw": value, "URL-encoded": urllib.parse.quote(value, safe=""),
            "URL-encoded (/ kept)": urllib.parse.quote(value), "form-encoded": urllib.parse.quote_plus(value),
            "JSON-escaped": json.dumps(value)[1:-1], "shell-quoted": shlex.quote(value)}


def forms(value: str) -> set[str]:
    return set(named_forms(value).values())


def register(*values: str) -> None:
    """Add secrets; each is masked in every form of :func:`forms`."""
    with _lock:
        for value in values:
            if not value or len(value) < 4:  # masking "a" would shred every line
                continue
            for form in forms(value):
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
