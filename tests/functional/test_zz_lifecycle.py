"""Re-run, status, unstack, re-stack and clean, in this order (only with --stack; the file runs last)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import psutil
import pytest

import fingerprint
from conftest import ARTIFACTS, REPO, host_network_snapshot

pytestmark = pytest.mark.lifecycle

CONFIG_FILES = ["/etc/keystone/keystone.conf", "/etc/keystone/keystone-uwsgi.ini",
                "/etc/mysql/mariadb.conf.d/99-minstack.cnf", "/etc/rabbitmq/rabbitmq-env.conf",
                "/etc/openstack/clouds.yaml", str(REPO / "openrc"),
                "/etc/glance/glance-api.conf", "/etc/placement/placement.conf", "/etc/nova/nova.conf",
                "/etc/nova/nova-cpu.conf", "/etc/neutron/neutron.conf", "/etc/neutron/plugins/ml2/ml2_conf.ini",
                "/etc/neutron/neutron_ovn_agent.ini", "/etc/sudoers.d/minstack", "/etc/minstack/minstack.nft"]
# ... and Cinder's and Ceph's, where the stack has them (issue 12)
VOLUME_FILES = ["/etc/cinder/cinder.conf", "/etc/ceph/ceph.conf", "/etc/ceph/ceph.client.cinder.keyring"]
SERVER = "minstack-verify"
LIFECYCLE_VOLUME = "minstack-lifecycle-volume"


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
    files = CONFIG_FILES + [f for f in VOLUME_FILES if os.path.exists(f)]
    mtimes = {f: os.stat(f).st_mtime_ns for f in files}
    before = identity_snapshot(admin_conn)
    proc = minstack_cli.stack()
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "the stack is up" in proc.stdout
    assert "instance reachable: ping ok, ssh ok" in " ".join(proc.stdout.split())
    assert "nothing: the host was as the last run left it" in " ".join(proc.stdout.split())
    assert daemon_pids(settings) == pids, "a daemon was restarted by a run that had nothing to change"
    assert {f: os.stat(f).st_mtime_ns for f in files} == mtimes, "a config file was rewritten"
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


def test_status_lists_every_service(minstack_cli, settings):
    proc = minstack_cli.stack("status")
    assert proc.returncode == 0, proc.stdout
    for name in ("mysql", "rabbitmq", "epmd", "memcached", "keystone", "glance-api", "placement-api", "nova-api",
                 "nova-compute", "libvirtd", "neutron-api", "neutron-ovn-agent", "ovn-northd", "ovs-vswitchd"):
        assert name in proc.stdout
    if settings.is_enabled("c-vol"):  # issue 12: the Ceph daemons are minstack's too
        for name in ("ceph-mon", "ceph-mgr", "ceph-osd", "cinder-api", "cinder-scheduler", "cinder-volume"):
            assert name in proc.stdout


def guest_has_vdb(settings) -> bool:
    from minstack.ssh import ssh_command
    address = json.loads((settings.state_dir / "verify.json").read_text())["floating_ip"]
    proc = subprocess.run(ssh_command(settings, address, "test -b /dev/vdb && echo yes"), capture_output=True,
                          text=True, timeout=30)
    return proc.stdout.strip() == "yes"


def test_a_volume_is_attached_before_unstack(settings):
    """Issue 12: ./unstack.py keeps volumes, and a re-stack brings them back attached."""
    if not settings.is_enabled("c-vol"):
        pytest.skip("no c-vol in this localrc")
    conn, server = demo_server(settings)
    for old in conn.block_storage.volumes(name=LIFECYCLE_VOLUME):
        if old.status == "in-use":
            conn.compute.delete_volume_attachment(server, old)
            conn.block_storage.wait_for_status(old, status="available", wait=300)
        conn.block_storage.delete_volume(old)
        conn.block_storage.wait_for_delete(old, wait=300)
    volume = conn.block_storage.create_volume(name=LIFECYCLE_VOLUME, size=1)
    conn.block_storage.wait_for_status(volume, status="available", failures=["error"], wait=300)
    conn.compute.create_volume_attachment(server, volume=volume)
    conn.block_storage.wait_for_status(volume, status="in-use", failures=["error"], wait=300)
    assert wait_for(lambda: guest_has_vdb(settings), 120)


def wait_for(probe, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(2)
    return False


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


def test_restack_brings_the_volume_back_attached(settings):
    if not settings.is_enabled("c-vol"):
        pytest.skip("no c-vol in this localrc")
    conn, server = demo_server(settings)
    [volume] = list(conn.block_storage.volumes(name=LIFECYCLE_VOLUME))
    assert volume.status == "in-use" and [a["server_id"] for a in volume.attachments] == [server.id]
    # the guest was powered on again with its RBD disk: QEMU reopened it through librbd
    assert wait_for(lambda: guest_has_vdb(settings), 180), "the guest has no /dev/vdb after the re-stack"
    conn.compute.delete_volume_attachment(server, volume)
    conn.block_storage.wait_for_status(volume, status="available", wait=300)
    conn.block_storage.delete_volume(volume)
    conn.block_storage.wait_for_delete(volume, wait=300)


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


# what a boot takes away on a host without systemd: the tmpfs under /run (the run directories
# minstack's phases make, libvirt's record of its running guests) and the kernel's state
RUN_DIRS = ("/run/openvswitch", "/run/ovn", "/run/mysqld", "/run/libvirt")


def test_a_simulated_reboot_is_restored_by_one_run(minstack_cli, settings):
    """Issue 14 on a host without systemd: every process of the cloud killed at once (guests and
    daemons' children too), br-ex, the NAT table and forwarding gone, /run emptied.  One ./stack.py
    brings it all back, installs nothing again, and says what it restored."""
    before = json.loads((settings.state_dir / "verify.json").read_text())
    pids = {name: pid for name, pid in daemon_pids(settings).items() if pid}
    procs = []
    for pid in [*pids.values(), *qemu_pids()]:
        try:
            main = psutil.Process(pid)
            procs += [main, *main.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    alive = psutil.wait_procs(procs, timeout=30)[1]
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], alive
    if Path("/sys/class/net/br-ex").exists():  # a tap of ovs-vswitchd's: gone with it, or not
        subprocess.run(["ip", "link", "del", "br-ex"], check=True)
    subprocess.run(["nft", "delete", "table", "ip", "minstack"], check=False)
    saved = settings.state_dir / "ip_forward.before"
    if saved.exists():
        Path("/proc/sys/net/ipv4/ip_forward").write_text(saved.read_text())
    for path in RUN_DIRS:
        shutil.rmtree(path, ignore_errors=True)
    assert minstack_cli.stack("status").returncode == 3

    proc = minstack_cli.stack()
    assert proc.returncode == 0, proc.stdout[-3000:]
    print(f"./stack.py after a simulated reboot took {proc.seconds:.0f}s")
    out = " ".join(proc.stdout.split())
    assert "instance reachable: ping ok, ssh ok" in out
    restored = out[out.index("Restored or changed by this run"):]
    for what in ("start nova-api: not running", "start ovs-vswitchd: not running", "gateway address", "nat"):
        assert what in restored, restored[:3000]
    assert "install" not in restored, restored[:3000]  # packages, the venv, the test image: as they were
    after = daemon_pids(settings)
    assert all(after.values()) and not set(after.values()) & set(pids.values())
    addresses = subprocess.run(["ip", "-br", "addr", "show", "br-ex"], capture_output=True, text=True).stdout
    assert f"{settings.public_network_gateway}/" in addresses, addresses
    assert subprocess.run(["nft", "list", "table", "ip", "minstack"], capture_output=True).returncode == 0
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"
    conn, server = demo_server(settings)
    assert server is not None and server.status == "ACTIVE"
    assert json.loads((settings.state_dir / "verify.json").read_text())["floating_ip"] == before["floating_ip"]


def test_clean_removes_what_minstack_made_and_nothing_else(minstack_cli, settings, network_before, host_before):
    """The host's fingerprint after ./unstack.py --clean is the one taken before the first stack
    (after the distro packages, which stay): files under /etc by content, users, groups, MariaDB's
    accounts and databases, RabbitMQ's users and vhosts, sockets, daemons, the network."""
    ours = {pid for pid in daemon_pids(settings).values() if pid}
    shutil.copytree(settings.logdir, ARTIFACTS / "logs", dirs_exist_ok=True)  # for the secrets scan
    proc = minstack_cli.unstack("--clean")
    assert proc.returncode == 0, proc.stdout
    print(f"./unstack.py --clean took {proc.seconds:.0f}s")
    assert not [p for p in ours if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not settings.data_dir.exists() and not settings.logdir.exists()
    assert not (settings.dest / "tempest").exists()
    assert not (REPO / "openrc").exists()
    assert not Path("/usr/local/bin/openstack").exists()
    assert host_network_snapshot() == network_before
    after = lambda: fingerprint.take(keep_accounts=(settings.stack_user,), dest=settings.dest)  # noqa: E731
    difference = fingerprint.settled_difference(host_before, after)
    fingerprint.save(after(), ARTIFACTS / "fingerprint-after-clean.json")
    (ARTIFACTS / "fingerprint-difference.txt").write_text("\n".join(difference) + "\n")
    assert not difference, "./unstack.py --clean left the host changed:\n" + "\n".join(difference)
