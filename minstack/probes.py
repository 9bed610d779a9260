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


def reported_since_start(reported_since):
    """Readiness of a service that reports itself in its database (nova's services, heat-engine):
    ready() is true once reported_since(start) says it wrote a record at or after its start.

    The start is taken at the supervisor's first call, which comes right after the start (naive
    UTC, to the second, as the services write it, less one second): a record from before the
    start does not count.
    """
    import datetime
    started: list[datetime.datetime] = []

    def ready() -> bool:
        if not started:
            now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None, microsecond=0)
            started.append(now - datetime.timedelta(seconds=1))
        return reported_since(started[0])
    return ready
