"""The ordered, resumable pipeline of phases.

Phases are the modules in ``phases/``; each exports ``PHASE``.  The order
follows the declared ``requires``; a phase starts as soon as everything it
requires has finished, so independent phases run side by side (at most
``max_parallel`` at once: two cores here).
"""
from __future__ import annotations

import importlib
import logging
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Iterable

from minstack.errors import MinstackError
from minstack.paths import PHASES
from minstack.phase import Phase, Step
from minstack.state import State


class PipelineError(MinstackError):
    pass


class PhaseFailedOnPurpose(MinstackError):
    pass


def phase_module(name: str):
    """The module phases/<name>.py (phases/ is a package beside minstack/)."""
    if str(PHASES.parent) not in sys.path:
        sys.path.insert(0, str(PHASES.parent))
    return importlib.import_module(f"{PHASES.name}.{name}")


def load_phases() -> list[Phase]:
    """Import every phases/*.py module and collect its PHASE, then the enabled plugins' phases."""
    from minstack import plugins
    phases = []
    for path in sorted(PHASES.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = phase_module(path.stem)
        phase = getattr(module, "PHASE", None)
        if not isinstance(phase, Phase):
            raise PipelineError(f"{path}: defines no PHASE")
        phases.append(phase)
    phases += plugins.phases()
    names = [p.name for p in phases]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise PipelineError(f"duplicate phase names: {sorted(dupes)}")
    return phases


def dependencies(phases: Iterable[Phase], settings=None) -> dict[str, set[str]]:
    """Each phase's requirements among the given phases (a disabled requirement just drops out),
    with what the settings add (Phase.requirements)."""
    phases = list(phases)
    present = {p.name for p in phases}
    return {p.name: set(p.requirements(settings)) & present for p in phases}


def waves(phases: Iterable[Phase], settings=None) -> list[list[Phase]]:
    """Group phases into waves: every phase of a wave needs only earlier waves.

    The waves are what ``--dry-run`` shows; the runner itself starts each
    phase as soon as its own requirements are done, which is never later.
    """
    phases = list(phases)
    by_name = {p.name: p for p in phases}
    deps = dependencies(phases, settings)
    done: set[str] = set()
    result = []
    while len(done) < len(phases):
        ready = [n for n in by_name if n not in done and deps[n] <= done]
        if not ready:
            cycle = sorted(n for n in by_name if n not in done)
            raise PipelineError(f"phases require each other in a cycle: {', '.join(cycle)}")
        result.append([by_name[n] for n in sorted(ready, key=list(by_name).index)])
        done.update(ready)
    return result


def select(phases: list[Phase], settings, only: list[str] | None = None,
           skip: list[str] | None = None) -> list[Phase]:
    """Enabled phases, narrowed by --only / --skip (unknown names are an error)."""
    known = {p.name for p in phases}
    for name in (only or []) + (skip or []):
        if name not in known:
            import difflib
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PipelineError(f"no phase named {name!r}{hint}; phases: {', '.join(sorted(known))}")
    chosen = [p for p in phases if p.enabled(settings)]
    if only:
        chosen = [p for p in chosen if p.name in only]
    if skip:
        chosen = [p for p in chosen if p.name not in skip]
    return chosen


@dataclass
class PhaseResult:
    name: str
    seconds: float = 0.0
    status: str = "pending"  # pending | running | done | failed | cancelled
    steps_run: int = 0
    steps_skipped: int = 0
    error: BaseException | None = None
    notes: list[str] = field(default_factory=list)
    # the probed steps that found the host not as described and acted, with what they saw when it
    # says why ("start nova-api: not running"): on a stacked host, what this run restored
    changed: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    phases: dict[str, PhaseResult] = field(default_factory=dict)
    wall_seconds: float = 0.0
    failed: PhaseResult | None = None


class Reporter:
    """What the pipeline tells the user (minstack.ui implements it)."""

    def phase_started(self, phase: str) -> None: ...
    def step_started(self, phase: str, step: str) -> None: ...
    def phase_finished(self, result: PhaseResult) -> None: ...


@dataclass
class Look:
    """What a step's probe saw: a reason to skip it, or what its action gets."""

    skip: str | None = None
    observation: object = None
    key: str | None = None          # the step's once_key, as recorded once it ran


def look(step: Step, state: State, phase: str) -> Look:
    """Run the step's probe once: skip it, or hand what it saw to the action."""
    if step.once_key is not None:
        key = step.once_key() if callable(step.once_key) else step.once_key
        return Look("done before" if state.done_key(phase, step.name) == key else None, key=key)
    if step.check is not None:
        return Look("already so" if step.check() else None)
    if step.observe is not None:
        seen = step.observe()
        return Look(None if seen else "already so", seen)
    return Look()


def act(step: Step, seen: Look) -> None:
    if step.observe is not None:
        step.action(seen.observation)
    else:
        step.action()


class Pipeline:
    def __init__(self, phases: list[Phase], make_context: Callable[[Phase], object], state: State,
                 reporter: Reporter, fail_phase: str | None = None, max_parallel: int = 2, settings=None):
        self.phases = phases
        self.settings = settings  # what Phase.requirements reads
        self.make_context = make_context
        self.state = state
        self.reporter = reporter
        self.fail_phase = fail_phase
        self.max_parallel = max_parallel
        self.log = logging.getLogger("minstack")

    def run(self) -> RunResult:
        result = RunResult({p.name: PhaseResult(p.name) for p in self.phases})
        deps = dependencies(self.phases, self.settings)
        pending = {p.name: p for p in self.phases}
        running: dict[Future, Phase] = {}
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=self.max_parallel, thread_name_prefix="phase") as pool:
            while pending or running:
                if result.failed is None:
                    for name, phase in list(pending.items()):
                        finished = {n for n, r in result.phases.items() if r.status == "done"}
                        if deps[name] <= finished and len(running) < self.max_parallel:
                            del pending[name]
                            result.phases[name].status = "running"
                            running[pool.submit(self._run_phase, phase, result.phases[name])] = phase
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    phase = running.pop(future)
                    phase_result = result.phases[phase.name]
                    if future.exception() is not None and result.failed is None:
                        result.failed = phase_result
        for name in pending:
            result.phases[name].status = "cancelled"
        result.wall_seconds = time.monotonic() - started
        return result

    def _run_phase(self, phase: Phase, result: PhaseResult) -> None:
        ctx = self.make_context(phase)
        self.reporter.phase_started(phase.name)
        started = time.monotonic()
        try:
            fail_phase, _, fail_step = (self.fail_phase or "").partition("/")
            if fail_phase == phase.name and not fail_step:
                raise PhaseFailedOnPurpose(
                    f"phase {phase.name} failed on purpose (MINSTACK_DEBUG_FAIL_PHASE={phase.name})")
            for step in phase.steps(ctx):
                self.reporter.step_started(phase.name, step.name)
                if fail_phase == phase.name and fail_step == step.name:
                    raise PhaseFailedOnPurpose(f"phase {phase.name} failed on purpose before step {step.name} "
                                               f"(MINSTACK_DEBUG_FAIL_PHASE={self.fail_phase})")
                seen = look(step, self.state, phase.name)
                if seen.skip:
                    ctx.log.info("step %s: skipped (%s)", step.name, seen.skip)
                    result.steps_skipped += 1
                    continue
                ctx.log.info("step %s: %s", step.name, step.describe or "running")
                step_started = time.monotonic()
                act(step, seen)
                ctx.log.info("step %s: done in %.2fs", step.name, time.monotonic() - step_started)
                self.state.record_step(phase.name, step.name, seen.key)
                result.steps_run += 1
                if not step.checks_only and (step.observe or step.check or step.once_key) is not None:
                    why = seen.observation if isinstance(seen.observation, str) else ""
                    why = "" if "\n" in why or len(why) > 80 else why  # a reason, not a file's content
                    result.changed.append(f"{step.name}: {why}" if why else step.name)
            result.status = "done"
        except BaseException as exc:
            result.status = "failed"
            result.error = exc
            ctx.log.exception("phase %s failed", phase.name)
            raise
        finally:
            result.notes = list(getattr(ctx, "notes", []))
            result.seconds = time.monotonic() - started
            self.reporter.phase_finished(result)
