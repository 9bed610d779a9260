"""./stack.py restart and logs: names resolve like DevStack's, restarts are real, logs tail and follow."""
from __future__ import annotations

import getpass
import io
import logging
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from minstack import masking
from minstack.cli import match_daemons, restart_daemons, show_logs
from minstack.errors import MinstackError
from minstack.supervisor import Daemon, ProcessSupervisor, tail

DAEMONS = [Daemon("nova-api", ["x"], service="n-api"), Daemon("nova-compute", ["x"], service="n-cpu"),
           Daemon("nova-conductor", ["x"], service="n-cond"), Daemon("neutron-api", ["x"], service="q-svc"),
           Daemon("neutron-periodic-workers", ["x"], service="q-svc"), Daemon("keystone", ["x"], service="key")]


def names(found):
    return [d.name for d in found]


def test_names_are_services_daemons_or_globs():
    assert names(match_daemons(DAEMONS, ["n-api"])) == ["nova-api"]
    assert names(match_daemons(DAEMONS, ["nova-compute"])) == ["nova-compute"]
    assert names(match_daemons(DAEMONS, ["n-*"])) == ["nova-api", "nova-compute", "nova-conductor"]
    assert names(match_daemons(DAEMONS, ["q-svc"])) == ["neutron-api", "neutron-periodic-workers"]
    assert names(match_daemons(DAEMONS, ["key", "n-api", "nova-api"])) == ["keystone", "nova-api"]


def test_an_unknown_name_is_an_error_with_a_suggestion():
    with pytest.raises(MinstackError, match=r"no daemon or service named 'nova-apii'.*did you mean 'nova-api'"):
        match_daemons(DAEMONS, ["nova-apii"])


def test_tail_reads_back_as_far_as_the_lines_reach(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i} " + "x" * 100 + "\n" for i in range(1000)))
    last = tail(log, 300)
    assert len(last) == 300 and last[0].startswith("line 700 ") and last[-1].startswith("line 999 ")
    assert tail(tmp_path / "missing.log", 5) == []


def test_restart_gives_the_daemon_a_new_pid(tmp_path, capsys):
    sup = ProcessSupervisor(tmp_path / "run", tmp_path / "logs")
    log = tmp_path / "logs" / "sleeper.log"
    daemon = Daemon("sleeper", [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
                    user=getpass.getuser(), ready=lambda: "up" in log.read_text())
    sup.ensure_running(daemon, logging.getLogger("t"))
    before = sup.process(daemon).pid
    settings = SimpleNamespace(logdir=tmp_path / "logs", state_dir=tmp_path / "state")
    from rich.console import Console
    console = Console(file=io.StringIO())
    try:
        assert restart_daemons(console, settings, sup, [daemon]) == 0
        after = sup.process(daemon).pid
        assert after != before
        assert f"restarted sleeper (pid {before} -> {after})" in console.file.getvalue()
    finally:
        sup.stop(daemon, logging.getLogger("t"))


def test_logs_prints_the_last_lines_masked_and_follows(tmp_path, capsys):
    log = tmp_path / "nova-api.log"
    log.write_text("".join(f"old {i}\n" for i in range(50)) + "password=s3cret-value\n")
    masking.register("s3cret-value")
    try:
        from rich.console import Console
        show_logs(Console(file=io.StringIO()), [log], 3, follow=False)
        out = capsys.readouterr().out.splitlines()
        assert out == ["old 48", "old 49", "password=******"]

        def write_later():
            time.sleep(0.3)
            with log.open("a") as f:
                f.write("new line\n")
        threading.Thread(target=write_later).start()
        deadline = time.monotonic() + 1.0
        show_logs(Console(file=io.StringIO()), [log], 0, True, 0.05, lambda: time.monotonic() < deadline)
        assert capsys.readouterr().out.splitlines() == ["new line"]
    finally:
        masking.clear()


def test_the_command_word_may_come_after_the_config_option():
    from minstack.cli import first_word
    assert first_word(["--config", "tests/functional/localrc", "logs", "n-api", "-n", "20"]) == "logs"
    assert first_word(["-c", "localrc", "restart", "n-*"]) == "restart"
    assert first_word(["restart", "n-api"]) == "restart"
    assert first_word(["--fresh"]) is None
