"""Ordering, parallel groups, resume and the on-purpose failure, with fake phases (no root)."""
import logging
import threading
import time

import pytest

from minstack.phase import Phase, Step
from minstack.pipeline import Pipeline, PipelineError, Reporter, look, select, waves
from minstack.state import State


class FakeSettings:
    def __init__(self, services=()):
        self.enabled_services = frozenset(services)

    def is_enabled(self, *names):
        return any(n in self.enabled_services for n in names)


class Ctx:
    def __init__(self, name):
        self.log = logging.getLogger(f"test.{name}")


class Recording(Phase):
    """A phase whose steps append to a shared journal."""

    journal: list = None
    sleep: float = 0.0
    fail_at: str | None = None

    def steps(self, ctx):
        def act(step_name):
            def run():
                self.journal.append(("start", self.name, step_name, time.monotonic()))
                time.sleep(self.sleep)
                if self.fail_at == step_name:
                    raise RuntimeError(f"{self.name}/{step_name} broke")
                self.journal.append(("end", self.name, step_name, time.monotonic()))
            return run
        return [Step("one", act("one"), once_key="k1"), Step("two", act("two"), once_key="k2")]


def make(name, requires=(), services=(), **kw):
    phase = Recording(name=name, requires=requires, services=services)
    for key, value in kw.items():
        setattr(phase, key, value)
    return phase


def run(phases, tmp_path, journal, fail_phase=None, state=None):
    for p in phases:
        p.journal = journal
    state = state or State(tmp_path / "state.json")
    return Pipeline(phases, lambda p: Ctx(p.name), state, Reporter(), fail_phase=fail_phase).run(), state


def test_waves_follow_requirements():
    a, b, c, d = make("a"), make("b", ("a",)), make("c", ("a",)), make("d", ("b", "c"))
    assert [[p.name for p in w] for w in waves([d, c, b, a])] == [["a"], ["c", "b"], ["d"]]


def test_missing_requirement_drops_out_but_cycle_is_an_error():
    assert [[p.name for p in w] for w in waves([make("b", ("not-enabled",))])] == [["b"]]
    with pytest.raises(PipelineError, match="cycle: x, y"):
        waves([make("x", ("y",)), make("y", ("x",))])


class NeedsBWhenAsked(Recording):
    """A phase that needs b only when the settings say so (as Glance needs Swift with GLANCE_USE_SWIFT)."""

    def requirements(self, settings):
        return self.requires + (("b",) if settings is not None and settings.is_enabled("ask") else ())


def test_a_setting_can_add_a_requirement(tmp_path):
    a, b = make("a"), make("b", ("a",))
    c = NeedsBWhenAsked(name="c", requires=("a",))
    assert [[p.name for p in w] for w in waves([a, b, c])] == [["a"], ["b", "c"]]
    assert [[p.name for p in w] for w in waves([a, b, c], FakeSettings())] == [["a"], ["b", "c"]]
    assert [[p.name for p in w] for w in waves([a, b, c], FakeSettings({"ask"}))] == [["a"], ["b"], ["c"]]
    journal = []
    for p in (a, b, c):
        p.journal = journal
    Pipeline([a, b, c], lambda p: Ctx(p.name), State(tmp_path / "state.json"), Reporter(),
             settings=FakeSettings({"ask"})).run()
    ends = {name: at for what, name, step, at in journal if what == "end" and step == "two"}
    starts = {name: at for what, name, step, at in journal if what == "start" and step == "one"}
    assert ends["b"] <= starts["c"]


def test_select_only_skip_and_enabled():
    phases = [make("a"), make("b", services=("key",)), make("c")]
    assert [p.name for p in select(phases, FakeSettings())] == ["a", "c"]
    assert [p.name for p in select(phases, FakeSettings({"key"}), only=["b"])] == ["b"]
    assert [p.name for p in select(phases, FakeSettings({"key"}), skip=["a"])] == ["b", "c"]
    with pytest.raises(PipelineError, match="did you mean 'a'"):
        select(phases, FakeSettings(), only=["aa"])


def test_independent_phases_run_in_parallel_and_order_is_kept(tmp_path):
    journal = []
    phases = [make("a", sleep=0.05), make("b", ("a",), sleep=0.3), make("c", ("a",), sleep=0.3),
              make("d", ("b", "c"))]
    result, _ = run(phases, tmp_path, journal)
    assert result.failed is None
    events = {(e[0], e[1], e[2]): e[3] for e in journal}
    # b and c overlap in time
    assert events[("start", "c", "one")] < events[("end", "b", "two")]
    assert events[("start", "b", "one")] < events[("end", "c", "two")]
    # d only after both
    assert events[("start", "d", "one")] >= max(events[("end", "b", "two")], events[("end", "c", "two")])
    assert result.wall_seconds < sum(r.seconds for r in result.phases.values())


def test_failure_stops_dependents_and_resume_skips_finished_steps(tmp_path):
    journal = []
    phases = [make("a"), make("b", ("a",), fail_at="two"), make("c", ("b",))]
    result, state = run(phases, tmp_path, journal)
    assert result.failed.name == "b"
    assert result.phases["c"].status == "cancelled"
    assert "broke" in str(result.failed.error)
    # the cause is fixed; a new pipeline with the saved state resumes at b/two
    journal.clear()
    phases[1].fail_at = None
    result, _ = run(phases, tmp_path, journal, state=State(tmp_path / "state.json"))
    assert result.failed is None
    started = [(e[1], e[2]) for e in journal if e[0] == "start"]
    assert started == [("b", "two"), ("c", "one"), ("c", "two")]
    assert result.phases["a"].steps_skipped == 2


def test_fail_phase_on_purpose(tmp_path):
    result, _ = run([make("a"), make("b", ("a",))], tmp_path, [], fail_phase="b")
    assert result.failed.name == "b"
    assert "MINSTACK_DEBUG_FAIL_PHASE=b" in str(result.failed.error)


def test_a_step_looks_once_and_skips_when_nothing_differs(tmp_path):
    state = State(tmp_path / "s.json")
    assert look(Step("x", print, check=lambda: True), state, "p").skip == "already so"
    assert look(Step("x", print, check=lambda: False), state, "p").skip is None
    assert look(Step("x", print, once_key="v1"), state, "p").skip is None
    state.record_step("p", "x", "v1")
    assert look(Step("x", print, once_key="v1"), state, "p").skip == "done before"
    # new inputs (another lock file, another version): runs again
    assert look(Step("x", print, once_key="v2"), state, "p").skip is None
    assert look(Step("x", print), state, "p").skip is None
    assert look(Step("x", print, observe=lambda: []), state, "p").skip == "already so"
    seen = look(Step("x", print, observe=lambda: ["router1 has no interface"]), state, "p")
    assert seen.skip is None and seen.observation == ["router1 has no interface"]


def test_the_action_gets_what_the_probe_saw_and_the_probe_runs_once(tmp_path):
    probes, acted = [], []

    class Observing(Phase):
        def steps(self, ctx):
            def observe():
                probes.append(1)
                return {"missing": "tcp 22"}
            return [Step("rules", acted.append, observe=observe)]

    result = Pipeline([Observing(name="a")], lambda p: Ctx(p.name), State(tmp_path / "s.json"), Reporter()).run()
    assert result.failed is None
    assert probes == [1] and acted == [{"missing": "tcp 22"}]


def test_a_step_takes_one_kind_of_probe():
    with pytest.raises(ValueError):
        Step("x", print, check=lambda: True, once_key="v1")


def test_fail_before_one_step_on_purpose(tmp_path):
    journal = []
    result, _ = run([make("a"), make("b", ("a",))], tmp_path, journal, fail_phase="b/two")
    assert result.failed.name == "b"
    assert "before step two" in str(result.failed.error)
    started = [(e[1], e[2]) for e in journal if e[0] == "start"]
    assert ("b", "one") in started and ("b", "two") not in started


def test_at_most_two_phases_at_once(tmp_path):
    active, peak, lock = [0], [0], threading.Lock()

    class Counting(Phase):
        def steps(self, ctx):
            def act():
                with lock:
                    active[0] += 1
                    peak[0] = max(peak[0], active[0])
                time.sleep(0.1)
                with lock:
                    active[0] -= 1
            return [Step("s", act)]

    phases = [Counting(name=n) for n in "abcde"]
    Pipeline(phases, lambda p: Ctx(p.name), State(tmp_path / "s.json"), Reporter()).run()
    assert peak[0] == 2


def test_unstack_stops_a_phase_after_what_requires_it_and_independent_ones_side_by_side():
    from minstack.cli import stop_in_reverse_order
    phases = [Phase(name="libvirt"), Phase(name="ovn"), Phase(name="nova", requires=("libvirt",)),
              Phase(name="neutron", requires=("ovn",)), Phase(name="verify", requires=("nova", "neutron"))]
    journal, lock = [], threading.Lock()

    def stop(phase):
        with lock:
            journal.append(("start", phase.name))
        time.sleep(0.2)
        with lock:
            journal.append(("end", phase.name))

    started = time.monotonic()
    stop_in_reverse_order(phases, stop)
    seconds = time.monotonic() - started
    order = {(what, name): i for i, (what, name) in enumerate(journal)}
    for phase in phases:  # each phase stops only once everything that requires it has stopped
        for required in phase.requires:
            assert order[("end", phase.name)] < order[("start", required)]
    assert order[("start", "neutron")] < order[("end", "nova")]  # independent: side by side
    assert seconds < 0.2 * 3 + 0.3  # three rounds of 0.2 s, not five


def test_stop_daemons_forgets_them_only_when_asked():
    from minstack.cli import stop_daemons
    from minstack.supervisor import Daemon

    class Sup:
        def __init__(self):
            self.stopped, self.forgotten = [], []

        def stop(self, d, log):
            self.stopped.append(d.name)
            return d.name != "b"

        def forget(self, d):
            self.forgotten.append(d.name)

    sup = Sup()
    daemons = [Daemon("a", ["x"]), Daemon("b", ["y"])]
    assert [d.name for d in stop_daemons(sup, daemons, logging.getLogger("t"))] == ["a"]
    assert sorted(sup.stopped) == ["a", "b"] and sup.forgotten == []
    stop_daemons(sup, daemons, logging.getLogger("t"), forget=True)
    assert sup.forgotten == ["a", "b"]
    # one by one, last first (RabbitMQ before its epmd); still reports what was running
    sup = Sup()
    assert [d.name for d in stop_daemons(sup, daemons, logging.getLogger("t"), one_by_one=True)] == ["a"]
    assert sup.stopped == ["b", "a"]


class Restoring(Phase):
    """A stacked host after a reboot: one daemon down, one file in place, a check that only looks."""

    def steps(self, ctx):
        return [Step("start api", lambda seen: None, observe=lambda: "not running"),
                Step("start db", lambda seen: None, observe=lambda: None),
                Step("bridge address", lambda seen: None, observe=lambda: [["10.0.0.1/24"]]),
                Step("nat", lambda seen: None, observe=lambda: "table ip minstack {\n  chain ...\n}\n"),
                Step("ping", lambda: None, checks_only=True)]


def test_a_run_lists_what_it_found_missing_and_restored(tmp_path):
    from minstack.ui import changes_panel
    from rich.console import Console
    result = Pipeline([Restoring(name="net")], lambda p: Ctx(p.name), State(tmp_path / "s.json"), Reporter()).run()
    assert result.phases["net"].changed == ["start api: not running", "bridge address", "nat"]
    console = Console(record=True, width=200)
    console.print(changes_panel(result))
    assert "start api: not running; bridge address; nat" in console.export_text()
    result.phases["net"].changed = []
    console.print(changes_panel(result))
    assert "nothing: the host was as the last run left it" in console.export_text()
