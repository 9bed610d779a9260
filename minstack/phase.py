"""The contract every phase module follows.

A phase (one module in ``phases/``) owns one service or concern, like a
DevStack lib/ file.  It declares:

- ``name`` and ``requires`` (names of phases that must finish first; the
  pipeline derives the order and the parallelism from these),
- ``services``: the DevStack service names that switch it on (none: always on),
- ``steps(ctx)``: the ordered, idempotent steps that bring the host to the
  wanted state,
- ``daemons(ctx)``: the long-running processes it supervises (for status,
  stop and restart),
- ``clean(ctx)``: what ``unstack.py --clean`` removes (only what it created).

Each :class:`Step` checks before it changes (pyinfra's rule) in one of three
ways, borrowed from cloud-init's module frequencies:

- ``check``: a cheap probe run every time; the action runs only when it says
  the host is not yet as wanted;
- ``once_key``: the action ran successfully before with the same inputs (a
  fingerprint recorded in the state file), so it is skipped: for expensive
  work whose result can't be probed cheaply (a pip install, a db sync);
- neither: the action is idempotent by itself (it compares before it writes).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from minstack.context import Context
    from minstack.settings import Settings
    from minstack.supervisor import Daemon


@dataclass
class Step:
    name: str
    action: Callable[[], object]
    describe: str = ""
    check: Callable[[], bool] | None = None
    once_key: str | None = None


@dataclass
class Phase:
    name: str = ""
    requires: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    debs: tuple[str, ...] = field(default=())  # lists under files/debs/ this phase needs

    def enabled(self, settings: "Settings") -> bool:
        return not self.services or settings.is_enabled(*self.services)

    def steps(self, ctx: "Context") -> list[Step]:
        return []

    def daemons(self, ctx: "Context") -> list["Daemon"]:
        return []

    def stop(self, ctx: "Context") -> None:
        """What ./unstack.py does before stopping this phase's daemons (e.g. power off guests)."""

    def clean(self, ctx: "Context") -> None:
        """Remove what this phase created (databases, data, files)."""

    def summary(self, settings: "Settings") -> list[tuple[str, str]]:
        """(label, value) rows for the closing summary, e.g. a service's URL."""
        return []

    # Base services (MariaDB, RabbitMQ, memcached) keep running on a plain
    # ./unstack.py, as in DevStack; ./unstack.py --all stops them too.
    keep_running_on_unstack: bool = False
