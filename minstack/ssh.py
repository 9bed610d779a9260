"""The demo key and how minstack (and its users) reach an instance with it."""
from __future__ import annotations

from pathlib import Path

SSH_USER = "cirros"  # CirrOS's user; minstack's offline test image has the same one


def key_path(settings) -> Path:
    return settings.data_dir / "ssh" / "id_ed25519"


def ssh_command(settings, address: str, *command: str) -> list[str]:
    """ssh to an instance with the demo key; the instance is new each time, so no known_hosts."""
    return ["ssh", "-i", str(key_path(settings)), "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
            "-o", "LogLevel=ERROR", f"{SSH_USER}@{address}", *command]
