"""Readiness probes: a daemon is ready when it answers, not after a sleep."""
from __future__ import annotations

import socket
import urllib.error
import urllib.request


def tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_status(url: str, timeout: float = 3.0) -> int | None:
    """The HTTP status code the URL answers with (any code means the server is up), or None."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, urllib.error.URLError):
        return None


def http_ok(url: str, timeout: float = 3.0) -> bool:
    status = http_status(url, timeout)
    return status is not None and status < 500
