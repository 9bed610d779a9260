"""The systemd machine for tests/systemd (see tests/run-systemd): booted once for the session,
powered off and removed at its end (MINSTACK_SD_KEEP=1 keeps it running, for a look inside)."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from harness import ARTIFACTS, MACHINE, Machine


@pytest.fixture(scope="session")
def machine():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "commands.log").write_text("")
    started = time.monotonic()
    subprocess.run([MACHINE, "up"], check=True)
    m = Machine()
    m.record("boot empty machine", time.monotonic() - started)
    yield m
    if os.environ.get("MINSTACK_SD_KEEP") != "1":
        subprocess.run([MACHINE, "down"], check=False)
