"""Re-run, status, unstack, re-stack and clean, in this order (only with --stack; the file runs last)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psutil
import pytest

from conftest import REPO, host_network_snapshot

pytestmark = pytest.mark.lifecycle

CONFIG_FILES = ["/etc/keystone/keystone.conf", "/etc/keystone/keystone-uwsgi.ini",
                "/etc/mysql/mariadb.conf.d/99-minstack.cnf", "/etc/rabbitmq/rabbitmq-env.conf",
                "/etc/openstack/clouds.yaml", str(REPO / "openrc"),
                "/etc/glance/glance-api.conf", "/etc/placement/placement.conf", "/etc/nova/nova.conf",
                "/etc/nova/nova-cpu.conf", "/etc/neutron/neutron.conf", "/etc/neutron/plugins/ml2/ml2_conf.ini",
                "/etc/neutron/neutron_ovn_agent.ini", "/etc/sudoers.d/minstack", "/etc/minstack/minstack.nft"]
DATABASES = ["keystone", "glance", "placement", "nova_api", "nova_cell0", "nova_cell1", "neutron"]
SERVER = "minstack-verify"


def qemu_pids() -> list[int]:
    """The qemu processes of Nova's guests (libvirt names them guest=instance-...), nobody else's."""
    return [p.pid for p in psutil.process_iter(["name", "cmdline"])
            if (p.info["name"] or "").startswith("qemu-system")
            and any("guest=instance-" in arg for arg in p.info["cmdline"] or [])]


def demo_server(settings):
    from minstack import identity
    conn = identity.user_connection(settings, "demo", "demo")
    return conn, conn.compute.find_server(SERVER)
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
    assert "instance reachable: ping ok, ssh ok" in " ".join(proc.stdout.split())
    assert daemon_pids(settings) == pids, "a daemon was restarted by a run that had nothing to change"
    assert {f: os.stat(f).st_mtime_ns for f in CONFIG_FILES} == mtimes, "a config file was rewritten"
    after = identity_snapshot(admin_conn)
    assert after == before  # no duplicate (or lost) user, project, role, service or endpoint
    assert (MARKER, marker_project) in after["projects"]


def test_the_served_image_was_downloaded_once_and_checked_against_its_sums(image_server, settings):
    """The first run downloaded the image, then fetched the SHA256SUMS beside it and found the sum
    matching; the second run (above) used the cached copy instead of downloading again."""
    assert image_server, "tests/functional/localrc's IMAGE_URLS names no http://127.0.0.1 URL to serve"
    assert len(image_server.downloads()) == 1, image_server.requests
    sums = [r for r in image_server.requests if r.path == image_server.sums_path and r.status == 200]
    assert sums and image_server.requests.index(sums[0]) > image_server.requests.index(image_server.downloads()[0])
    log = (settings.logdir / "phases" / "image.log").read_text()
    assert f"downloading {image_server.url}" in log and "sha256 verified against SHA256SUMS" in log


def test_status_lists_every_service(minstack_cli):
    proc = minstack_cli.stack("status")
    assert proc.returncode == 0, proc.stdout
    for name in ("mysql", "rabbitmq", "epmd", "memcached", "keystone", "glance-api", "placement-api", "nova-api",
                 "nova-compute", "libvirtd", "neutron-api", "neutron-ovn-agent", "ovn-northd", "ovs-vswitchd"):
        assert name in proc.stdout


def test_unstack_stops_everything_but_the_base_services_and_the_instances_too(minstack_cli, settings):
    assert qemu_pids(), "the verification instance should be running before unstack"
    proc = minstack_cli.unstack()
    assert proc.returncode == 0, proc.stdout
    pids = daemon_pids(settings)
    base = ("mysql", "rabbitmq", "epmd", "memcached")
    assert all(pids[n] for n in base)
    assert not [n for n, pid in pids.items() if pid and n not in base], pids
    assert not qemu_pids(), "an instance's qemu process survived ./unstack.py"
    status = minstack_cli.stack("status")
    assert status.returncode == 3 and "down" in status.stdout


def test_restack_brings_back_the_same_data_and_instance(minstack_cli, settings, admin_conn, marker_project):
    before = json.loads((settings.state_dir / "verify.json").read_text())
    proc = minstack_cli.stack()
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert all(daemon_pids(settings).values())
    assert admin_conn.identity.get_project(marker_project).name == MARKER
    conn, server = demo_server(settings)
    assert server is not None and server.status == "ACTIVE"
    after = json.loads((settings.state_dir / "verify.json").read_text())
    assert after["floating_ip"] == before["floating_ip"]  # the same instance, powered on again


def test_crashed_services_are_shown_down_and_restored(minstack_cli, settings):
    """kill -9 an API service and nova-compute: status says down, ./stack.py starts them again."""
    pids = daemon_pids(settings)
    for name in ("nova-api", "nova-compute"):
        os.kill(pids[name], 9)
        psutil.Process(pids[name]).wait(10) if psutil.pid_exists(pids[name]) else None
    status = minstack_cli.stack("status")
    assert status.returncode == 3
    proc = minstack_cli.stack()
    assert proc.returncode == 0, proc.stdout[-3000:]
    after = daemon_pids(settings)
    assert all(after.values())
    assert after["nova-api"] != pids["nova-api"] and after["nova-compute"] != pids["nova-compute"]
    assert after["keystone"] == pids["keystone"]  # only what was down was started


def test_clean_removes_what_minstack_made_and_nothing_else(minstack_cli, settings, network_before):
    ours = {pid for pid in daemon_pids(settings).values() if pid}
    proc = minstack_cli.unstack("--clean")
    assert proc.returncode == 0, proc.stdout
    assert not [p for p in ours if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not settings.data_dir.exists() and not settings.logdir.exists()
    for database in DATABASES:
        assert not Path(f"/var/lib/mysql/{database}").exists(), f"database {database} was not dropped"
    for etc in ("keystone", "glance", "placement", "nova", "neutron", "minstack"):
        assert not Path(f"/etc/{etc}").exists(), f"/etc/{etc} remains"
    assert not Path("/etc/sudoers.d/minstack").exists()
    assert not (settings.dest / "tempest").exists()
    assert not list(Path("/etc/libvirt/qemu").glob("instance-*.xml"))
    assert not qemu_pids()
    assert not Path("/sys/class/net/br-ex").exists() and not Path("/sys/class/net/br-int").exists()
    vif_taps = [p.name for p in Path("/sys/class/net").glob("tap*")
                if (p / "address").read_text().strip().startswith("fa:16:3e:")]
    assert not vif_taps, f"guest taps left behind: {vif_taps}"
    assert subprocess.run(["nft", "list", "table", "ip", "minstack"], capture_output=True).returncode != 0
    namespaces = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    assert not [n for n in namespaces if n.startswith("ovnmeta-")], namespaces  # the OVN agent's
    assert not (REPO / "openrc").exists() and not Path("/etc/openstack/clouds.yaml").exists()
    assert not Path("/usr/local/bin/openstack").exists()
    assert host_network_snapshot() == network_before
