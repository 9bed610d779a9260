"""Open vSwitch, OVN and Neutron on ML2/OVN, and the demo project's private network, on the real host."""
from __future__ import annotations

import json
import logging
import socket
import subprocess
import time
from ipaddress import ip_address, ip_interface, ip_network
from pathlib import Path
from types import SimpleNamespace

import pytest

from phases_import import phase_module

ovn = phase_module("ovn")
neutron = phase_module("neutron")
network = phase_module("network")

OVN_SERVICES = ("ovsdb-server", "ovs-vswitchd", "ovn-northd", "ovn-controller")
HOSTNAME = socket.gethostname()


@pytest.fixture(scope="module", autouse=True)
def neutron_enabled(settings):
    # The localrc decides what is stacked; this module checks Neutron/OVN where they are.
    if not settings.is_enabled("q-svc", "q-ovn-agent", *OVN_SERVICES):
        pytest.skip(f"{settings.source} enables neither Neutron nor OVN")


def sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout


def daemon_status(settings, phase_name: str):
    from minstack.cli import make_context_factory
    from minstack.pipeline import load_phases
    from minstack.state import State
    from minstack.supervisor import make_supervisor
    sup = make_supervisor(settings.state_dir / "run", settings.logdir)
    make = make_context_factory(settings, State(settings.state_dir / "state.json"), sup, to_file=False)
    [phase] = [p for p in load_phases() if p.name == phase_name]
    return {d.name: sup.status(d) for d in phase.daemons(make(phase))}


def expected_datapath() -> str:
    loaded = Path("/sys/module/openvswitch").exists()
    loadable = subprocess.run(["modprobe", "-n", "openvswitch"], capture_output=True).returncode == 0
    return "system" if loaded or loadable else "netdev"


# ---- packages, processes and listeners ---------------------------------------------------------
@pytest.mark.parametrize("package", ["openvswitch-switch", "ovn-central", "ovn-host", "haproxy"])
def test_package_installed(host, package):
    assert host.package(package).is_installed


def test_ovs_and_ovn_daemons_run_as_root(settings):
    statuses = daemon_status(settings, "ovn")
    assert set(statuses) == {"ovsdb-server", "ovs-vswitchd", "ovn-nb-ovsdb", "ovn-sb-ovsdb", "ovn-northd",
                             "ovn-controller"}
    for name, status in statuses.items():
        assert status.running, f"{name} is not running"
        assert status.user == "root", (name, status.user)


def test_neutron_daemons_run_as_stack_user(settings, host):
    statuses = daemon_status(settings, "neutron")
    assert set(statuses) == {"neutron-api", "neutron-periodic-workers", "neutron-ovn-maintenance-worker",
                             "neutron-ovn-agent"}
    for name, status in statuses.items():
        assert status.running, f"{name} is not running"
        assert status.user == settings.stack_user, (name, status.user)
    # the API is uWSGI serving neutron.wsgi.api (no neutron-server, no neutron-rpc-server)
    assert "module = neutron.wsgi.api" in host.file("/etc/neutron/neutron-api-uwsgi.ini").content_string


@pytest.mark.parametrize("port", [ovn.OVSDB_PORT, ovn.NB_PORT, ovn.SB_PORT])
def test_ovsdb_listens_on_loopback_only(host, port):
    assert host.socket(f"tcp://127.0.0.1:{port}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening
    assert not host.socket(f"tcp://:::{port}").is_listening


def test_neutron_api_listens_on_service_host_and_answers(host, settings):
    from minstack.probes import http_status
    assert host.socket(f"tcp://{settings.service_host}:9696").is_listening
    assert not host.socket("tcp://0.0.0.0:9696").is_listening
    assert http_status(f"http://{settings.service_host}:9696/") == 200


# ---- the switch and the chassis -------------------------------------------------------------------
@pytest.mark.parametrize("bridge", ["br-int", "br-ex"])
def test_bridges_use_the_hosts_datapath(bridge):
    assert sh("ovs-vsctl", "br-exists", bridge) == ""  # exit 0: it exists
    found = sh("ovs-vsctl", "--bare", "--columns=datapath_type", "find", "Bridge", f"name={bridge}").strip()
    assert (found or "system") == expected_datapath()


def test_br_ex_carries_nothing_but_the_public_range(settings):
    """br-ex is minstack's own bridge: at most the public gateway (in FLOATING_RANGE, put there by the
    public network's phase) is on it, never another address or route of the host."""
    assert sh("ip", "link", "show", "dev", "br-ex")  # exists in the host (the netdev datapath's tap)
    links = json.loads(sh("ip", "-j", "-4", "addr", "show", "dev", "br-ex"))  # [] while it has no IPv4
    for addr in [a for link in links for a in link.get("addr_info", [])]:
        assert ip_interface(f"{addr['local']}/{addr['prefixlen']}").network == settings.floating_range, addr
    for route in json.loads(sh("ip", "-j", "-4", "route", "show", "dev", "br-ex")):
        assert ip_network(route["dst"]) == settings.floating_range, route


def test_open_vswitch_settings():
    other = sh("ovs-vsctl", "get", "Open_vSwitch", ".", "other_config:userspace-tso-enable").strip()
    assert other.strip('"') == "true"
    ids = json.loads(sh("ovs-vsctl", "--format=json", "--columns=external_ids", "list", "Open_vSwitch", "."))
    external = ovn.parse_ovsdb_map(ids["data"][0][0])
    assert external["system-id"] == Path("/etc/openvswitch/system-id.conf").read_text().strip()
    assert external["hostname"] == HOSTNAME
    assert external["ovn-remote"] == "tcp:127.0.0.1:6642"
    assert external["ovn-bridge-datapath-type"] == expected_datapath()
    assert external["ovn-bridge-mappings"] == "public:br-ex"


def test_chassis_registered_in_southbound_db(settings):
    system_id = Path("/etc/openvswitch/system-id.conf").read_text().strip()
    out = json.loads(sh("ovn-sbctl", "--db=tcp:127.0.0.1:6642", "--format=json",
                        "--columns=name,hostname,encaps", "list", "Chassis"))
    chassis = {row[0]: row[1] for row in out["data"]}
    assert chassis.get(system_id) == HOSTNAME
    encap = sh("ovn-sbctl", "--db=tcp:127.0.0.1:6642", "--bare", "--columns=type,ip", "find", "Encap",
               f"chassis_name={system_id}").split()
    assert encap == ["geneve", settings.service_host]


def test_northd_is_active():
    assert "Status: active" in sh("ovn-appctl", "-t", "ovn-northd", "status")


# ---- neutron --------------------------------------------------------------------------------------
def test_neutron_files_are_owned_and_moded(host, settings):
    assert host.file("/etc/neutron").mode == 0o750
    for path in ("neutron.conf", "plugins/ml2/ml2_conf.ini", "neutron_ovn_agent.ini"):
        f = host.file(f"/etc/neutron/{path}")
        assert (f.user, f.group, f.mode) == ("root", settings.stack_user, 0o640), path
    rootwrap = host.file("/etc/neutron/rootwrap.conf")
    assert (rootwrap.user, rootwrap.mode) == ("root", 0o644)


def test_metadata_secret_is_the_derived_one(host, settings):
    """Nova's phase derives the same value (minstack/derived_secrets.py) for nova.conf."""
    from minstack.derived_secrets import metadata_secret
    agent_ini = host.file("/etc/neutron/neutron_ovn_agent.ini").content_string
    assert f'metadata_proxy_shared_secret = "{metadata_secret(settings)}"' in agent_ini


def test_network_endpoints(admin_conn, settings):
    [service] = [s for s in admin_conn.identity.services(type="network")]
    assert service.name == "neutron"
    endpoints = {e.interface: e.url for e in admin_conn.identity.endpoints(service_id=service.id)}
    assert endpoints == {i: f"http://{settings.service_host}:9696/" for i in ("public", "internal", "admin")}


def test_agents_of_this_host_are_alive(admin_conn):
    agents = {a.binary: a for a in admin_conn.network.agents(host=HOSTNAME)}
    controller, agent = agents["ovn-controller"], agents["neutron-ovn-agent"]
    assert controller.agent_type in neutron.CONTROLLER_AGENT_TYPES and controller.is_alive
    assert agent.agent_type == "OVN Neutron agent" and agent.is_alive
    chassis = Path("/etc/openvswitch/system-id.conf").read_text().strip()
    assert controller.configuration["chassis_name"] == agent.configuration["chassis_name"] == chassis


# ---- the demo project's private network ---------------------------------------------------------
def demo(admin_conn):
    return admin_conn.identity.find_project("demo", domain_id="default")


def test_private_network_exists_once(admin_conn, settings):
    project = demo(admin_conn)
    networks = list(admin_conn.network.networks(name="private", project_id=project.id))
    assert len(networks) == 1
    subnets = list(admin_conn.network.subnets(network_id=networks[0].id))
    assert [(s.name, s.cidr, s.is_dhcp_enabled, s.ip_version) for s in subnets] == \
        [("private-subnet", str(settings.fixed_range), True, 4)]
    assert networks[0].provider_network_type == "geneve"


def test_network_phase_again_changes_nothing(admin_conn, settings):
    project = demo(admin_conn)
    before = {(n.id, s.id) for n in admin_conn.network.networks(project_id=project.id)
              for s in admin_conn.network.subnets(network_id=n.id)}
    network.ensure_private_network(SimpleNamespace(settings=settings, log=logging.getLogger("test")))
    after = {(n.id, s.id) for n in admin_conn.network.networks(project_id=project.id)
             for s in admin_conn.network.subnets(network_id=n.id)}
    assert after == before


def test_port_gets_an_address_from_fixed_range(admin_conn, settings):
    project = demo(admin_conn)
    net = admin_conn.network.find_network("private", project_id=project.id)
    port = admin_conn.network.create_port(network_id=net.id, project_id=project.id, name="minstack-test-port")
    try:
        [fixed] = port.fixed_ips
        assert ip_address(fixed["ip_address"]) in settings.fixed_range
    finally:
        admin_conn.network.delete_port(port.id)
    assert admin_conn.network.find_port(port.id) is None


def test_bound_port_reaches_the_metadata_proxy(admin_conn, settings):
    """A port bound to this host, plugged into br-int and put in a namespace (a VM stand-in), goes
    ACTIVE and reaches 169.254.169.254 over TCP: OVN's flows, the netdev datapath with userspace TSO,
    the OVN agent's ovnmeta namespace and haproxy.  Any HTTP answer proves the path (it is Nova's
    metadata API, or haproxy's 503 when Nova is not stacked)."""
    project = demo(admin_conn)
    net = admin_conn.network.find_network("private", project_id=project.id)
    port = admin_conn.network.create_port(network_id=net.id, project_id=project.id, name="minstack-test-vif",
                                          binding_host_id=HOSTNAME, device_owner="compute:minstack-test",
                                          device_id="minstack-test")
    dev, ns = f"tap{port.id[:11]}", "mst-test-vif"
    ip = port.fixed_ips[0]["ip_address"]
    try:
        assert port.binding_vif_type == "ovs"
        sh("ovs-vsctl", "add-port", "br-int", dev, "--", "set", "Interface", dev, "type=internal",
           f"external_ids:iface-id={port.id}", f"external_ids:attached-mac={port.mac_address}",
           "external_ids:iface-status=active")
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "set", dev, "netns", ns)
        for command in (["ip", "link", "set", dev, "address", port.mac_address], ["ip", "link", "set", dev, "up"],
                        ["ip", "addr", "add", f"{ip}/{settings.fixed_range.prefixlen}", "dev", dev]):
            sh("ip", "netns", "exec", ns, *command)
        deadline = time.monotonic() + 60
        while admin_conn.network.get_port(port.id).status != "ACTIVE":
            assert time.monotonic() < deadline, "the port did not go ACTIVE"
            time.sleep(1)
        # the metadata port's address (DHCP would give this route as option 121)
        meta_ip = next(p.fixed_ips[0]["ip_address"] for p in admin_conn.network.ports(
            network_id=net.id, device_owner="network:distributed"))
        sh("ip", "netns", "exec", ns, "ip", "route", "add", "169.254.169.254/32", "via", meta_ip)
        code = "000"
        while code == "000" and time.monotonic() < deadline:  # the agent is still making the proxy
            code = subprocess.run(["ip", "netns", "exec", ns, "curl", "-s", "-m", "5", "-o", "/dev/null",
                                   "-w", "%{http_code}", "http://169.254.169.254/latest/meta-data/"],
                                  capture_output=True, text=True).stdout
        assert code != "000" and 200 <= int(code) < 600, code
        assert f"ovnmeta-{net.id}" in sh("ip", "netns", "list")
    finally:
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        subprocess.run(["ovs-vsctl", "--if-exists", "del-port", "br-int", dev], capture_output=True)
        admin_conn.network.delete_port(port.id)
