"""The state file: which steps finished, with which inputs, and how the last run ended.

It lives at ``$DATA_DIR/minstack/state.json``.  A step with a ``once_key`` is
skipped when its recorded key matches; every other step checks the host.
After a failed run the next run therefore walks the same pipeline, passing
quickly over everything that was done, and resumes at the step that failed.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path


class State:
    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self.data: dict = {"steps": {}, "last_run": None}
        if path.exists():
            self.data = json.loads(path.read_text())
            self.data.setdefault("steps", {})

    def done_key(self, phase: str, step: str) -> str | None:
        return self.data["steps"].get(f"{phase}/{step}", {}).get("key")

    def record_step(self, phase: str, step: str, key: str | None) -> None:
        with self._lock:
            self.data["steps"][f"{phase}/{step}"] = {"key": key, "at": time.time()}
            self._save()

    def forget_step(self, phase: str, step: str) -> None:
        with self._lock:
            if self.data["steps"].pop(f"{phase}/{step}", None) is not None:
                self._save()

    def forget_phase(self, phase: str) -> None:
        with self._lock:
            prefix = f"{phase}/"
            self.data["steps"] = {k: v for k, v in self.data["steps"].items() if not k.startswith(prefix)}
            self._save()

    # ---- restarts a changed config file asked for, until the daemon really restarted ----
    def pending_restarts(self) -> set[str]:
        return set(self.data.get("restarts", []))

    def ask_restart(self, *daemons: str) -> None:
        """Kept in the file: a run that fails before the start step still restarts them next time."""
        with self._lock:
            wanted = set(self.data.get("restarts", [])) | set(daemons)
            if wanted != set(self.data.get("restarts", [])):
                self.data["restarts"] = sorted(wanted)
                self._save()

    def restarted(self, daemon: str) -> None:
        with self._lock:
            if daemon in self.data.get("restarts", []):
                self.data["restarts"] = [name for name in self.data["restarts"] if name != daemon]
                self._save()

    @property
    def last_run(self) -> dict | None:
        return self.data.get("last_run")

    def record_run(self, **info) -> None:
        with self._lock:
            self.data["last_run"] = {"at": time.time(), **info}
            self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)
