"""Re-run, status, unstack, re-stack and clean, in this order (only with --stack; the file runs last)."""
from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from conftest import REPO, host_network_snapshot

pytestmark = pytest.mark.lifecycle

CONFIG_FILES = ["/etc/keystone/keystone.conf", "/etc/keystone/keystone-uwsgi.ini",
                "/etc/mysql/mariadb.conf.d/99-minstack.cnf", "/etc/rabbitmq/rabbitmq-env.conf",
                "/etc/openstack/clouds.yaml", str(REPO / "openrc")]
MARKER = "minstack-lifecycle-marker"


def daemon_pids(settings) -> dict[str, int | None]:
    from minstack.cli import make_context_factory
    from minstack.pipeline import load_phases, select
    from minstack.state import State
    from minstack.supervisor import make_supervisor
    sup = make_supervisor(settings.state_dir / "run", settings.logdir)
    make = make_context_factory(settings, State(settings.state_dir / "state.json"), sup, to_file=False)
    return {d.name: sup.status(d).pid for p in select(load_phases(), settings) for d in p.daemons(make(p))}


def identity_snapshot(conn) -> dict:
    return {
        "users": sorted((u.name, u.id) for u in conn.identity.users()),
        "projects": sorted((p.name, p.id) for p in conn.identity.projects()),
        "roles": sorted((r.name, r.id) for r in conn.identity.roles()),
        "endpoints": sorted((e.interface, e.url, e.id) for e in conn.identity.endpoints()),
        "services": sorted((s.type, s.id) for s in conn.identity.services()),
    }


@pytest.fixture(scope="module")
def marker_project(admin_conn):
    """Data a user made between runs: every later run must keep it."""
    project = admin_conn.identity.find_project(MARKER) or admin_conn.identity.create_project(
        name=MARKER, domain_id="default", description="made by the functional suite")
    return project.id


def test_second_run_changes_nothing(minstack_cli, settings, admin_conn, marker_project):
    pids = daemon_pids(settings)
    mtimes = {f: os.stat(f).st_mtime_ns for f in CONFIG_FILES}
    before = identity_snapshot(admin_conn)
    proc = minstack_cli.stack()
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "the stack is up" in proc.stdout
    assert daemon_pids(settings) == pids, "a daemon was restarted by a run that had nothing to change"
    assert {f: os.stat(f).st_mtime_ns for f in CONFIG_FILES} == mtimes, "a config file was rewritten"
    after = identity_snapshot(admin_conn)
    assert after == before  # no duplicate (or lost) user, project, role, service or endpoint
    assert (MARKER, marker_project) in after["projects"]


def test_status_lists_every_service(minstack_cli):
    proc = minstack_cli.stack("status")
    assert proc.returncode == 0, proc.stdout
    for name in ("mysql", "rabbitmq", "epmd", "memcached", "keystone"):
        assert name in proc.stdout


def test_unstack_stops_keystone_but_keeps_the_base_services(minstack_cli, settings):
    proc = minstack_cli.unstack()
    assert proc.returncode == 0, proc.stdout
    pids = daemon_pids(settings)
    assert pids["keystone"] is None
    assert all(pids[n] for n in ("mysql", "rabbitmq", "memcached"))
    status = minstack_cli.stack("status")
    assert status.returncode == 3 and "down" in status.stdout


def test_crashed_daemon_is_shown_down_and_restored(minstack_cli, settings, admin_conn, marker_project):
    """After the unstack above keystone is down; kill -9 memcached too, then ./stack.py brings both back."""
    os.kill(daemon_pids(settings)["memcached"], 9)
    status = minstack_cli.stack("status")
    assert status.returncode == 3
    proc = minstack_cli.stack()
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert all(daemon_pids(settings).values())
    assert admin_conn.identity.get_project(marker_project).name == MARKER


def test_clean_removes_what_minstack_made_and_nothing_else(minstack_cli, settings, network_before):
    ours = {pid for pid in daemon_pids(settings).values() if pid}
    proc = minstack_cli.unstack("--clean")
    assert proc.returncode == 0, proc.stdout
    assert not [p for p in ours if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not settings.data_dir.exists() and not settings.logdir.exists()
    assert not Path("/var/lib/mysql/keystone").exists(), "database keystone was not dropped"
    assert not Path("/etc/keystone").exists()
    assert not (REPO / "openrc").exists() and not Path("/etc/openstack/clouds.yaml").exists()
    assert not Path("/usr/local/bin/openstack").exists()
    assert host_network_snapshot() == network_before
