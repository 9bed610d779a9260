"""The contract every phase module follows.

A phase (one module in ``phases/``) owns one service or concern, like a
DevStack lib/ file.  It declares:

- ``name`` and ``requires`` (names of phases that must finish first; the
  pipeline derives the order and the parallelism from these; ``requirements(settings)``
  adds those a setting asks for: Glance storing images in Swift needs Swift),
- ``services``: the DevStack service names that switch it on (none: always on),
- ``steps(ctx)``: the ordered, idempotent steps that bring the host to the
  wanted state,
- ``daemons(ctx)``: the long-running processes it supervises (for status,
  stop and restart),
- ``clean(ctx)``: what ``unstack.py --clean`` removes (only what it created).

Each :class:`Step` looks before it changes (pyinfra's rule), in one of two
ways, borrowed from cloud-init's module frequencies:

- ``observe``: a probe run every time that returns what differs from the
  wanted state (falsy: nothing, the step is skipped); the action gets that
  observation, so a step looks at the host once and never writes its probe
  twice.  ``check`` is the short form for a probe that can only say yes or no
  (True: already so).
- ``once_key``: the action ran successfully before with the same inputs (a
  fingerprint recorded in the state file), so it is skipped: for expensive
  work whose result can't be probed cheaply (a pip install, a db sync).  A
  callable is asked when the step is reached: for a key an earlier step of
  the same phase changes (the commit a checkout step just moved to).

Because every step can say whether it would act, ``./stack.py plan`` on a
stacked host reports that nothing is left to do (``checks_only`` steps, which
only look, are listed apart).
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
    action: Callable[..., object]   # action(), or action(observation) when the step observes
    describe: str = ""
    check: Callable[[], bool] | None = None       # True: already so
    once_key: str | Callable[[], str] | None = None
    observe: Callable[[], object] | None = None   # what differs; falsy: nothing to do
    # a check that runs on every run by design and changes nothing (verify's ping + SSH):
    # the plan lists it apart from the steps that would change the host
    checks_only: bool = False

    def __post_init__(self):
        if sum(x is not None for x in (self.check, self.once_key, self.observe)) > 1:
            raise ValueError(f"step {self.name}: give one of check, once_key and observe")


@dataclass
class Phase:
    name: str = ""
    requires: tuple[str, ...] = ()
    # The DevStack services that switch it on; for a phase that installs projects of the
    # catalogue (minstack/catalogue.py), their services, derived from there when not given.
    services: tuple[str, ...] = ()
    debs: tuple[str, ...] = field(default=())  # lists under files/debs/ this phase needs

    def __post_init__(self):
        if not self.services:
            from minstack import catalogue
            self.services = catalogue.phase_services(self.name)

    def enabled(self, settings: "Settings") -> bool:
        return not self.services or settings.is_enabled(*self.services)

    def requirements(self, settings: "Settings | None") -> tuple[str, ...]:
        """The phases that must finish first: ``requires``, plus those these settings add (a phase
        whose work depends on another only with some setting overrides this).  None: ``requires``."""
        return self.requires

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
    # Each daemon needs the ones before it (RabbitMQ needs epmd): ./unstack.py stops them one by
    # one, last first, instead of side by side.
    stop_in_reverse_order: bool = False
