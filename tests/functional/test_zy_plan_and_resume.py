"""The plan on a stacked host has nothing to do; a restart a changed config asks for survives a failed
run (only with --stack: it changes Glance's config and puts it back; runs just before the lifecycle file)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import psutil
import pytest

from conftest import ARTIFACTS

pytestmark = pytest.mark.lifecycle

# An option Glance reads at start and reports nowhere else; its value only matters to be new.
OPTION = ("DEFAULT", "image_size_cap", "1099511627000")


def glance_pid(settings) -> int | None:
    from minstack.supervisor import Daemon, make_supervisor
    proc = make_supervisor(settings.state_dir / "run", settings.logdir).process(Daemon("glance-api", []))
    return proc.pid if proc else None


def pids(settings) -> dict[str, int | None]:
    from test_zz_lifecycle import daemon_pids
    return daemon_pids(settings)


def restart_alone(minstack_cli, settings, name: str, daemon: str):
    """./stack.py restart NAME: daemon has a new PID, every other daemon its old one."""
    before = pids(settings)
    proc = minstack_cli.stack("restart", name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = pids(settings)
    assert after[daemon] and after[daemon] != before[daemon]
    assert f"restarted {daemon} (pid {before[daemon]} -> {after[daemon]})" in proc.stdout
    assert {n: p for n, p in after.items() if n != daemon} == \
        {n: p for n, p in before.items() if n != daemon}, "another daemon was restarted"


def test_restart_by_service_name_restarts_only_those(minstack_cli, settings):
    restart_alone(minstack_cli, settings, "n-api", "nova-api")


def test_logs_prints_the_last_lines_of_a_service_log(minstack_cli, settings):
    proc = minstack_cli.stack("logs", "n-api", "-n", "20")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    log = (settings.logdir / "nova-api.log").read_text().splitlines()
    assert 0 < len(lines) <= 20 and lines == [line for line in log[-len(lines):]]
    unknown = minstack_cli.stack("logs", "n-apii")
    assert unknown.returncode == 1 and "did you mean" in unknown.stdout


def test_plan_on_a_stacked_host_has_nothing_to_do(minstack_cli):
    proc = minstack_cli.stack("plan")
    assert proc.returncode == 0, proc.stdout
    text = " ".join(proc.stdout.split())
    found = re.search(r"(\d+) steps: (\d+) would run, (\d+) already done; nothing to do", text)
    assert found, [line for line in proc.stdout.splitlines() if "would run" in line]
    total, would_run, done = map(int, found.groups())
    assert would_run == 0 and done == total > 100


def test_a_restart_asked_for_survives_a_failed_run(minstack_cli, localrc, settings):
    """Change a post-config option; the run fails before Glance's start step; the next run restarts it."""
    conf = Path(settings.config_files["GLANCE_API_CONF"])
    section, key, value = OPTION
    changed = ARTIFACTS / "local.conf-glance-option"
    changed.write_text("[[local|localrc]]\n" + localrc.read_text()
                       + f"\n[[post-config|$GLANCE_API_CONF]]\n[{section}]\n{key} = {value}\n")
    before = glance_pid(settings)
    assert before

    failed = minstack_cli.run("stack.py", "--config", str(changed), "--only", "glance",
                              env={"MINSTACK_DEBUG_FAIL_PHASE": "glance/start glance-api"})
    assert failed.returncode == 1, failed.stdout[-2000:]
    assert "failed on purpose before step start glance-api" in " ".join(failed.stdout.split())
    assert f"{key} = {value}" in conf.read_text()       # the config step ran
    assert glance_pid(settings) == before                  # ... and the daemon still runs the old one
    written = conf.stat().st_mtime

    resumed = minstack_cli.run("stack.py", "--config", str(changed), "--only", "glance")
    assert resumed.returncode == 0, resumed.stdout[-2000:]
    after = glance_pid(settings)
    assert after and after != before, "the resumed run did not restart glance-api"
    assert psutil.Process(after).create_time() > written   # it started after the new option was written
    assert f"{key} = {value}" in conf.read_text()

    # back to the suite's own configuration (Glance restarts once more, with its option gone)
    restored = minstack_cli.stack("--only", "glance")
    assert restored.returncode == 0, restored.stdout[-2000:]
    assert f"{key} = {value}" not in conf.read_text()
    assert glance_pid(settings) not in (None, after)
    os.unlink(changed)
