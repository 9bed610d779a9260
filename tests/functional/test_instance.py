"""The verification instance and what users do with it (issues 4 and 5), from this host, for real."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import time

import pytest

from minstack import identity
from minstack.ssh import ssh_command

SERVER = "minstack-verify"
PEER = "minstack-test-peer"


@pytest.fixture(scope="module")
def demo(settings):
    return identity.user_connection(settings, "demo", "demo")


@pytest.fixture(scope="module")
def server(demo):
    found = demo.compute.find_server(SERVER)
    assert found is not None, f"{SERVER} does not exist: the verify phase boots it"
    return demo.compute.get_server(found.id)


@pytest.fixture(scope="module")
def fip(demo, server) -> str:
    port = next(demo.network.ports(device_id=server.id))
    ips = list(demo.network.ips(port_id=port.id))
    assert len(ips) == 1
    return ips[0].floating_ip_address


def ssh(settings, address, *command, timeout=30) -> subprocess.CompletedProcess:
    return subprocess.run(ssh_command(settings, address, *command), capture_output=True, text=True, timeout=timeout)


def wait_until(probe, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(1)
    return False


def test_verification_instance_active_with_a_fixed_ip(server, settings):
    assert server.status == "ACTIVE"
    fixed = [a["addr"] for net in server.addresses.values() for a in net if a.get("OS-EXT-IPS:type") == "fixed"]
    assert fixed and all(__import__("ipaddress").ip_address(a) in settings.fixed_range for a in fixed)


def test_console_shows_dhcp_lease_and_login_marker(demo, server, test_image):
    console = demo.compute.get_server_console_output(server)["output"]
    assert re.search(r"udhcpc: lease of \S+ obtained", console, re.I)  # CirrOS says "Lease of"
    assert test_image["marker"] in console


def test_test_image_active_and_hypervisor_listed(admin_conn, test_image):
    images = [i for i in admin_conn.image.images() if i.name == test_image["name"]]
    assert len(images) == 1 and images[0].status == "active"
    assert socket.gethostname() in [h.name for h in admin_conn.compute.hypervisors()]


def test_floating_ip_answers_ping_and_ssh(settings, fip):
    assert subprocess.run(["ping", "-c", "2", "-W", "2", fip], capture_output=True).returncode == 0
    proc = ssh(settings, fip, "uname", "-a")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Linux ")


def test_inside_the_instance_metadata_answers_and_hostname_matches(settings, fip):
    proc = ssh(settings, fip, "timeout 10 wget -qO- http://169.254.169.254/latest/meta-data/hostname; echo; hostname")
    assert proc.returncode == 0, proc.stderr
    metadata_hostname, hostname = proc.stdout.split()
    assert metadata_hostname.split(".")[0] == SERVER and hostname.split(".")[0] == SERVER


def test_a_second_instance_reaches_the_first_over_its_fixed_ip(settings, demo, server, fip, test_image):
    image = demo.image.find_image(test_image["name"], ignore_missing=False)
    flavor = demo.compute.find_flavor("cirros256", ignore_missing=False)
    network = demo.network.find_network("private", ignore_missing=False)
    old = demo.compute.find_server(PEER)
    if old:
        demo.compute.delete_server(old)
        demo.compute.wait_for_delete(old, wait=120)
    peer = demo.compute.create_server(name=PEER, image_id=image.id, flavor_id=flavor.id,
                                      networks=[{"uuid": network.id}], key_name="minstack")
    try:
        peer = demo.compute.wait_for_server(peer, status="ACTIVE", wait=300)
        assert wait_until(lambda: test_image["marker"] in
                          (demo.compute.get_server_console_output(peer)["output"] or ""), 180)
        peer_ip = [a["addr"] for net in peer.addresses.values() for a in net][0]
        # from the first instance (reached through its floating IP), fetch the peer's HTTP responder
        # over the peer's fixed IP: it answers with its own hostname (both are in the default group,
        # which admits its members)
        proc = ssh(settings, fip, f"timeout 10 wget -qO- http://{peer_ip}/")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.strip().split(".")[0] == PEER
    finally:
        demo.compute.delete_server(peer)
        demo.compute.wait_for_delete(peer, wait=120)


def test_a_security_group_without_port_22_blocks_ssh(settings, demo, server, fip):
    group = demo.network.create_security_group(name="minstack-test-no-ssh", description="ICMP only")
    try:
        demo.network.create_security_group_rule(security_group_id=group.id, direction="ingress",
                                                ether_type="IPv4", protocol="icmp")
        demo.compute.add_security_group_to_server(server, group)
        demo.compute.remove_security_group_from_server(server, {"name": "default"})
        # ICMP still answers (the rules apply), SSH no longer connects
        assert wait_until(lambda: ssh(settings, fip, "true", timeout=15).returncode != 0, 60)
        assert subprocess.run(["ping", "-c", "2", "-W", "2", fip], capture_output=True).returncode == 0
        with pytest.raises(OSError):  # dropped by the security group: the connection times out
            socket.create_connection((fip, 22), timeout=5).close()
    finally:
        demo.compute.add_security_group_to_server(server, {"name": "default"})
        demo.compute.remove_security_group_from_server(server, group)
        demo.network.delete_security_group(group)
    assert wait_until(lambda: ssh(settings, fip, "true", timeout=15).returncode == 0, 60), "SSH not restored"


def test_verify_record_has_the_boot_and_ssh_times(settings):
    record = json.loads((settings.state_dir / "verify.json").read_text())
    assert record["reachable"] == "ping ok, ssh ok"
    assert 0 < record["active_seconds"] < record["marker_seconds"]
    assert record["ssh_seconds"] > 0


def test_br_ex_has_the_gateway_and_the_host_is_untouched(host, settings, network_before):
    from conftest import host_network_snapshot
    br_ex = host.interface("br-ex")
    assert br_ex.exists
    assert f"{settings.public_network_gateway}" in br_ex.addresses
    assert host_network_snapshot() == network_before  # default route and eth0's addresses as they were
    nat = subprocess.run(["nft", "list", "table", "ip", "minstack"], capture_output=True, text=True)
    assert nat.returncode == 0 and f"ip saddr {settings.floating_range}" in nat.stdout and "masquerade" in nat.stdout


def test_stack_py_verify_checks_again(minstack_cli):
    proc = minstack_cli.stack("verify")
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "instance reachable: ping ok, ssh ok" in " ".join(proc.stdout.split())


def test_a_snapshot_of_the_instance_becomes_an_active_image(settings, demo, server, fip):
    """The workshop's "Create Snapshot": Nova uploads the disk to Glance in chunks larger than
    uWSGI's default 1 MiB chunked-input limit, and every snapshot failed until glance-api took
    larger ones (the image was deleted again: "unable to receive chunked part")."""
    name = f"minstack-test-snapshot-{int(time.time())}"
    image_id = demo.compute.create_server_image(server, name).id
    try:
        image = demo.image.wait_for_status(demo.image.get_image(image_id), status="active",
                                           failures=["killed", "deleted"], interval=2, wait=300)
        assert image.size and image.size > 2**20, image.size
        assert demo.compute.get_server(server.id).status == "ACTIVE"
        assert ssh(settings, fip, "true").returncode == 0  # the instance runs on after its snapshot
    finally:
        demo.image.delete_image(image_id, ignore_missing=True)
