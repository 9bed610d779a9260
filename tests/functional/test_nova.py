"""libvirt and Nova on the real host: daemons, users, ports, the virt type decision, cells,
the hypervisor in the compute API and in placement, DevStack's flavors."""
from __future__ import annotations

import configparser
import grp
import logging
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from minstack import virt
from phases_import import phase_module

NOVA_DAEMONS = {"nova-api": "n-api", "nova-metadata": "n-api-meta", "nova-conductor": "n-cond",
                "nova-scheduler": "n-sch", "nova-compute": "n-cpu", "nova-novncproxy": "n-novnc"}
NOVA_PORTS = {"nova-api": 8774, "nova-metadata": 8775, "nova-novncproxy": 6080}
HOST = socket.gethostname()


@pytest.fixture(scope="module")
def nova():
    return phase_module("nova")


@pytest.fixture(scope="module")
def statuses(settings):
    """name -> DaemonStatus of every daemon the libvirt and nova phases supervise."""
    from minstack.cli import make_context_factory
    from minstack.state import State
    from minstack.supervisor import make_supervisor
    sup = make_supervisor(settings.state_dir / "run", settings.logdir)
    make = make_context_factory(settings, State(settings.state_dir / "state.json"), sup, to_file=False)
    found = {}
    for name in ("libvirt", "nova"):
        phase = phase_module(name).PHASE
        for daemon in phase.daemons(make(phase)):
            found[daemon.name] = sup.status(daemon)
    return found


def read_ini(path: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False)
    parser.read(path)
    return parser


def run_as(user: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user, "--", *argv], capture_output=True, text=True, timeout=120)


# ---- libvirt ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["virtlogd", "virtlockd", "libvirtd"])
def test_libvirt_daemon_supervised_in_the_foreground(statuses, host, name):
    assert statuses[name].running and statuses[name].user == "root"
    [proc] = [p for p in host.process.filter(comm=name) if p.pid == statuses[name].pid]
    assert " -d" not in proc.args and "--timeout" not in proc.args


def test_stack_user_reaches_libvirt_through_its_group(host, settings):
    assert "libvirt" in host.user(settings.stack_user).groups
    sock = host.file("/run/libvirt/libvirt-sock")
    assert (sock.group, sock.mode) == ("libvirt", 0o770)
    proc = run_as(settings.stack_user, "virsh", "-c", "qemu:///system", "version")
    assert proc.returncode == 0, proc.stderr
    assert "Running hypervisor: QEMU" in proc.stdout
    # and a user outside the group may not: the socket, not polkit, decides
    proc = run_as("nobody", "virsh", "-c", "qemu:///system", "version")
    assert proc.returncode != 0


def test_libvirt_default_nat_network_is_not_running(host):
    assert not host.interface("virbr0").exists


# ---- the virt type -----------------------------------------------------------------------------------------
def test_virt_type_in_nova_conf_is_the_recorded_decision(settings):
    decision = virt.known(settings)
    assert decision is not None, "no decision recorded for this kernel and QEMU"
    for path in ("/etc/nova/nova.conf", "/etc/nova/nova-cpu.conf"):
        conf = read_ini(path)
        assert conf.get("libvirt", "virt_type") == decision.virt_type
        if decision.virt_type == "qemu":
            assert conf.get("libvirt", "cpu_mode") == "none"
            assert conf.getboolean("workarounds", "libvirt_disable_apic")
        else:
            assert not conf.has_option("workarounds", "libvirt_disable_apic")


def test_the_probe_tells_a_booting_guest_from_a_broken_accelerator(settings):
    """Under TCG the test image must reach userspace (the probe can say yes); under KVM the probe
    must give the verdict that was recorded (the decision is reproducible, not a guess)."""
    from minstack import paths, testimage
    log = logging.getLogger("test_nova")
    image = testimage.build_test_image(paths.CACHE, settings.data_dir / "images")
    tcg = virt.boot_probe(image, log, accel="tcg")
    assert tcg.booted, tcg.detail
    if settings.libvirt_type == "auto" and virt.KVM_DEVICE.exists():
        kvm = virt.boot_probe(image, log)
        assert ("kvm" if kvm.booted else "qemu") == virt.known(settings).virt_type, kvm.detail


# ---- nova processes, files, ports ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(NOVA_DAEMONS))
def test_nova_daemon_runs_as_stack(statuses, settings, name):
    if not settings.is_enabled(NOVA_DAEMONS[name]):
        pytest.fail(f"{NOVA_DAEMONS[name]} is not enabled in this localrc: test_nova.py needs every nova service")
    assert statuses[name].running, f"{name} is not running"
    assert statuses[name].user == settings.stack_user


def test_nova_compute_holds_the_libvirt_group(statuses):
    pid = statuses["nova-compute"].pid
    groups = Path(f"/proc/{pid}/status").read_text().split("Groups:")[1].splitlines()[0].split()
    assert str(grp.getgrnam("libvirt").gr_gid) in groups


@pytest.mark.parametrize("name", list(NOVA_PORTS))
def test_nova_port_listens_on_service_host(host, settings, name):
    assert host.socket(f"tcp://{settings.service_host}:{NOVA_PORTS[name]}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{NOVA_PORTS[name]}").is_listening


def test_config_files_and_the_compute_one_holds_no_database(host, settings):
    for path in ("/etc/nova/nova.conf", "/etc/nova/nova-cpu.conf", "/etc/nova/api-paste.ini"):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("root", settings.stack_user, 0o640), path
    assert read_ini("/etc/nova/nova.conf").has_option("database", "connection")
    cpu = read_ini("/etc/nova/nova-cpu.conf")
    assert not cpu.has_section("database") and not cpu.has_section("api_database")
    rootwrap = host.file("/etc/nova/rootwrap.conf")
    assert rootwrap.user == "root" and "filters_path=/etc/nova/rootwrap.d" in rootwrap.content_string


def test_instances_dir_is_stacks_and_reachable_by_qemu(host, settings):
    instances = settings.data_dir / "nova" / "instances"
    assert host.file(str(instances)).user == settings.stack_user
    for parent in instances.parents:
        assert parent.stat().st_mode & 0o001, f"{parent} lacks o+x: qemu (libvirt-qemu) cannot reach instances"


def test_metadata_secret_is_the_one_neutrons_agent_has(settings):
    from minstack.derived_secrets import metadata_secret
    secret = read_ini("/etc/nova/nova.conf").get("neutron", "metadata_proxy_shared_secret").strip('"')
    assert secret == metadata_secret(settings) and len(secret) == 64
    agent = read_ini("/etc/neutron/neutron_ovn_agent.ini")
    assert agent.get("DEFAULT", "metadata_proxy_shared_secret").strip('"') == secret


def test_metadata_api_and_novnc_answer(settings):
    with urllib.request.urlopen(f"http://{settings.service_host}:8775/", timeout=10) as response:
        assert response.status == 200 and b"latest" in response.read()
    with urllib.request.urlopen(f"http://{settings.service_host}:6080/vnc_lite.html", timeout=10) as response:
        assert response.status == 200 and b"noVNC" in response.read()


# ---- the compute API, cells, placement -----------------------------------------------------------------------
def test_compute_endpoints(admin_conn, settings):
    [service] = [s for s in admin_conn.identity.services() if s.type == "compute"]
    urls = {e.interface: e.url for e in admin_conn.identity.endpoints(service_id=service.id)}
    url = f"http://{settings.service_host}:8774/v2.1"
    assert urls == {"public": url, "internal": url, "admin": url}


def test_every_compute_service_is_up(admin_conn):
    services = list(admin_conn.compute.services())
    assert {"nova-conductor", "nova-scheduler", "nova-compute"} <= {s.binary for s in services}
    assert [(s.binary, s.state, s.status) for s in services if (s.state, s.status) != ("up", "enabled")] == []


def test_hypervisor_listed_with_its_resources(admin_conn):
    # microversion 2.87: the last one whose hypervisor details still carry vcpus and memory
    response = admin_conn.compute.get("/os-hypervisors/detail", microversion="2.87")
    hypervisors = [h for h in response.json()["hypervisors"] if h["service"]["host"] == HOST]
    assert len(hypervisors) == 1
    [hyp] = hypervisors
    assert hyp["state"] == "up" and hyp["status"] == "enabled" and hyp["hypervisor_type"] == "QEMU"
    assert hyp["vcpus"] >= 1 and hyp["memory_mb"] > 512 and hyp["local_gb"] > 0


def test_placement_has_this_host_and_its_inventories(admin_conn):
    providers = list(admin_conn.placement.resource_providers(name=HOST))
    assert len(providers) == 1
    inventories = {inv.resource_class: inv for inv in
                   admin_conn.placement.resource_provider_inventories(providers[0])}
    assert {"VCPU", "MEMORY_MB", "DISK_GB"} <= set(inventories)
    response = admin_conn.compute.get("/os-hypervisors/detail", microversion="2.87")
    [hyp] = [h for h in response.json()["hypervisors"] if h["service"]["host"] == HOST]
    assert inventories["VCPU"].total == hyp["vcpus"]
    # libvirt's view of the host's memory moves (it grows here over time) and nova-compute reports it
    # to placement once a minute: the two agree within a few percent, not to the megabyte
    assert abs(inventories["MEMORY_MB"].total - hyp["memory_mb"]) <= 0.05 * hyp["memory_mb"]


def test_devstack_flavors_exist_exactly_once(admin_conn, nova):
    flavors = list(admin_conn.compute.flavors(is_public=None))
    for name, (flavor_id, ram, disk, vcpus) in nova.FLAVORS.items():
        same_name = [f for f in flavors if f.name == name]
        assert len(same_name) == 1, (name, len(same_name))
        [flavor] = same_name
        assert (flavor.id, flavor.ram, flavor.disk, flavor.vcpus) == (flavor_id, ram, disk, vcpus)
        assert admin_conn.compute.fetch_flavor_extra_specs(flavor).extra_specs == {"hw_rng:allowed": "True"}


def test_cells_v2_has_cell0_and_cell1(settings):
    proc = run_as(settings.stack_user, str(settings.venv / "bin" / "nova-manage"), "--config-file",
                  "/etc/nova/nova.conf", "cell_v2", "list_cells")
    assert proc.returncode == 0, proc.stderr
    rows = {cells[1].strip(): cells for line in proc.stdout.splitlines()
            if (cells := line.split("|")) and len(cells) > 4 and cells[1].strip() in ("cell0", "cell1")}
    assert set(rows) == {"cell0", "cell1"}
    assert "/nova_cell0?" in rows["cell0"][4] and "/nova_cell1?" in rows["cell1"][4]
    # The cells' URLs embed nova's database password URL-encoded: look for every form of it.
    from minstack.derived_secrets import database_password
    from minstack.masking import forms
    assert "/nova_cell1?" in proc.stdout  # the URLs are there, with the password masked
    for secret in (settings.database_password, database_password(settings, "nova")):
        assert not [form for form in forms(secret) if form in proc.stdout], "list_cells shows a password"


def test_this_host_is_mapped_to_cell1(settings):
    proc = run_as(settings.stack_user, str(settings.venv / "bin" / "nova-manage"), "--config-file",
                  "/etc/nova/nova.conf", "cell_v2", "list_hosts")
    assert proc.returncode == 0, proc.stderr
    assert any(line.split("|")[1:4] and line.split("|")[1].strip() == "cell1" and
               line.split("|")[3].strip() == HOST for line in proc.stdout.splitlines() if "|" in line)

