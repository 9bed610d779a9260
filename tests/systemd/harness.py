"""What tests/systemd share: the machine (tests/systemd/machine.sh) as the tests reach it."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
MACHINE = HERE / "machine.sh"
ARTIFACTS = REPO / "tests" / "artifacts" / "systemd"
GUEST_REPO = "/home/vagrant/minstack"
STATE = Path(os.environ.get("MINSTACK_SD_STATE", "/var/lib/minstack-systemd")) / os.environ.get("MINSTACK_SD_NAME", "mssd")


class Machine:
    """The machine, reached as Vagrant's users reach it: `ssh` as vagrant (what `vagrant ssh -c`
    does), and `root` for what only root inside may do, through a transient systemd unit."""

    def __init__(self):
        self.timings: dict[str, float] = {}
        self.ip = subprocess.run([MACHINE, "ip"], capture_output=True, text=True, check=True).stdout.strip()

    def _run(self, argv, timeout, check):
        started = time.monotonic()
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        result.seconds = time.monotonic() - started
        with open(ARTIFACTS / "commands.log", "a") as log:
            log.write(f"\n$ {' '.join(map(str, argv[1:]))}\n# exit {result.returncode} in {result.seconds:.1f} s\n"
                      f"{result.stdout[-20000:]}{result.stderr[-5000:]}")
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, argv[1:]))}: exit {result.returncode}\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def ssh(self, command: str, timeout: float = 600, check: bool = True):
        """A command as vagrant, in a login shell, in the synced repository."""
        return self._run([MACHINE, "ssh", f"cd {GUEST_REPO} && {command}"], timeout, check)

    def root(self, *argv: str, timeout: float = 600, check: bool = True):
        return self._run([MACHINE, "exec", *argv], timeout, check)

    def record(self, name: str, seconds: float) -> None:
        self.timings[name] = round(seconds, 1)
        (ARTIFACTS / "timings.json").write_text(json.dumps(self.timings, indent=1) + "\n")
