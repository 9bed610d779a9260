"""Block storage (issue 12): Cinder on RBD from minstack's one-node Ceph, used as a user would.

The Ceph daemons in `./stack.py status`, a healthy cluster on loopback only, Cinder's services up;
then, as the demo user: a volume is attached to the verification instance (the guest sees a new
disk and writes a marker on it), detached, attached to a second instance that reads the marker
back; extended; snapshotted into a new volume that has the marker; uploaded to an image and made
into a volume again, which has it too; deleted (its RBD image goes).  Last, boot from volume
(image -> volume -> server) answering SSH on a floating IP.

Guests see an attached volume as the next virtio disk (/dev/vdb) and are read and written with
the test image's busybox dd through sudo, over SSH through a floating IP, as test_instance.py does.
"""
from __future__ import annotations

import configparser
import json
import socket
import subprocess
import time
import uuid

import psutil
import pytest

from minstack import identity
from phases_import import phase_module
from test_instance import SERVER, ssh, wait_until

ceph = phase_module("ceph")
nova = phase_module("nova")

READER = "minstack-test-volume-reader"
BOOTED = "minstack-test-boot-from-volume"
PREFIX = "minstack-test-volume"
MARKER = f"minstack-volume-marker-{uuid.uuid4().hex[:12]}"
GIB_SECTORS = 2 ** 30 // 512
WAIT = 300  # seconds for a volume or server to reach a state (TCG guests, a slow sandbox)


@pytest.fixture(scope="module", autouse=True)
def cinder_enabled(settings):
    # The localrc decides what is stacked; this module checks Cinder where it is.
    if not settings.is_enabled("c-vol"):
        pytest.skip(f"{settings.source} does not enable c-vol")


# ---- the cluster and the services ---------------------------------------------------------------
def ceph_json(*args: str):
    proc = subprocess.run(["ceph", "--connect-timeout", "10", *args, "-f", "json"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def rbd_images() -> dict[str, int]:
    """RBD image name -> size in bytes, in the volumes pool, as client.cinder sees them."""
    proc = subprocess.run(["rbd", "--id", ceph.CLIENT, "ls", "-l", ceph.VOLUMES, "--format", "json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return {entry["image"]: entry["size"] for entry in json.loads(proc.stdout or "[]") if "snapshot" not in entry}


def test_status_shows_the_ceph_daemons_and_cinders(minstack_cli):
    proc = minstack_cli.stack("status", "--json")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    for name in (ceph.MON, ceph.MGR, ceph.OSD):
        assert rows[name]["running"] and rows[name]["user"] == ceph.USER, rows.get(name)
    for name in ("cinder-api", "cinder-scheduler", "cinder-volume"):
        assert rows[name]["running"] and rows[name]["user"] == "stack", rows.get(name)
    assert {row["service"] for name, row in rows.items() if name.startswith("cinder-")} == {"c-api", "c-sch", "c-vol"}


def test_the_cluster_is_healthy_with_its_pool_of_one_replica():
    status = ceph_json("status")
    assert ceph.not_ready(status) == [], status
    assert status["monmap"]["num_mons"] == 1 and status["osdmap"]["num_osds"] == 1
    pools = {pool["pool_name"]: pool for pool in ceph_json("osd", "pool", "ls", "detail")}
    assert pools[ceph.VOLUMES]["size"] == 1 and "rbd" in pools[ceph.VOLUMES]["application_metadata"]


def test_ceph_listens_on_loopback_only():
    names = {ceph.MON, ceph.MGR, ceph.OSD}
    listening = [(p.info["name"], c.laddr) for p in psutil.process_iter(["name"]) if p.info["name"] in names
                 for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert {name for name, _ in listening} == names
    assert {addr.ip for _, addr in listening} == {"127.0.0.1"}, listening
    assert {addr.port for name, addr in listening if name == ceph.MON} == {3300, 6789}


def test_cinder_services_are_up_and_the_volume_service_is_on_rbd(admin_conn, settings):
    services = list(admin_conn.block_storage.services())
    assert {(s.binary, s.state, s.status) for s in services} >= {("cinder-scheduler", "up", "enabled"),
                                                                  ("cinder-volume", "up", "enabled")}
    backends = settings.cinder_enabled_backends  # ceph:<name>: one cinder-volume host and pool each
    assert sorted(s.host for s in services if s.binary == "cinder-volume") == \
        sorted(f"{socket.gethostname()}@{name}" for name in backends)
    pools = list(admin_conn.block_storage.backend_pools())
    assert sorted((p.capabilities["storage_protocol"], p.capabilities["volume_backend_name"]) for p in pools) == \
        sorted(("ceph", name) for name in backends)


def test_block_storage_and_volumev3_endpoints(admin_conn, settings):
    url = f"http://{settings.service_host}:8776/v3"
    for kind in ("block-storage", "volumev3"):
        [service] = list(admin_conn.identity.services(type=kind))
        endpoints = {e.interface: e.url for e in admin_conn.identity.endpoints(service_id=service.id)}
        assert endpoints == {"public": url, "internal": url, "admin": url}, (kind, endpoints)


def test_nova_has_the_secret_cinder_names_and_libvirt_holds_the_key(settings):
    def ini(path):
        parser = configparser.RawConfigParser()
        parser.read(path)
        return parser
    cpu, cinder = ini(settings.config_files["NOVA_CPU_CONF"]), ini(settings.config_files["CINDER_CONF"])
    secret = cpu["libvirt"]["rbd_secret_uuid"]
    assert cpu["libvirt"]["rbd_user"] == ceph.CLIENT
    assert secret == cinder[settings.cinder_enabled_backends[0]]["rbd_secret_uuid"] == nova.rbd_secret_uuid(settings)
    assert cpu["cinder"]["catalog_info"] == "volumev3::publicURL"
    stored = subprocess.run(["virsh", "-c", "qemu:///system", "secret-get-value", secret], capture_output=True,
                            text=True, timeout=60)
    assert stored.returncode == 0, stored.stderr
    assert stored.stdout.strip() == nova.client_key(), "the libvirt secret does not hold client.cinder's key"


# ---- volumes, as the demo user --------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(settings):
    return identity.user_connection(settings, "demo", "demo")


def remove(demo, volumes, snapshots) -> None:
    """Volumes made from a snapshot first (an RBD clone keeps its parent snapshot), then the
    snapshots (a volume with snapshots cannot go), then the other volumes."""
    volumes = [demo.block_storage.find_volume(v.id) for v in volumes]
    volumes = [v for v in volumes if v is not None]
    for group in ([v for v in volumes if v.snapshot_id], None, [v for v in volumes if not v.snapshot_id]):
        if group is None:
            for snapshot in snapshots:
                demo.block_storage.delete_snapshot(snapshot, ignore_missing=True)
                demo.block_storage.wait_for_delete(snapshot, wait=WAIT)
            continue
        for volume in group:
            demo.block_storage.delete_volume(volume, ignore_missing=True)
            demo.block_storage.wait_for_delete(volume, wait=WAIT)


@pytest.fixture(scope="module")
def made(demo):
    """What the tests below make (volumes, snapshots, images, servers, floating IPs), removed at the
    end whatever happened; leftovers of an earlier run (by name) first."""
    for server_name in (READER, BOOTED):
        old = demo.compute.find_server(server_name)
        if old:
            demo.compute.delete_server(old)
            demo.compute.wait_for_delete(old, wait=WAIT)
    remove(demo, [v for v in demo.block_storage.volumes() if (v.name or "").startswith(PREFIX)],
           [s for s in demo.block_storage.snapshots() if (s.name or "").startswith(PREFIX)])
    for image in demo.image.images():
        if image.name.startswith(PREFIX):
            demo.image.delete_image(image)
    things = {"servers": [], "snapshots": [], "volumes": [], "images": [], "ips": []}
    yield things
    for server in things["servers"]:
        demo.compute.delete_server(server, ignore_missing=True)
        demo.compute.wait_for_delete(server, wait=WAIT)
    for ip in things["ips"]:
        demo.network.delete_ip(ip, ignore_missing=True)
    remove(demo, things["volumes"], things["snapshots"])
    for image in things["images"]:
        demo.image.delete_image(image, ignore_missing=True)


def available(demo, volume):
    return demo.block_storage.wait_for_status(volume, status="available", failures=["error", "error_extending"],
                                              wait=WAIT)


def new_volume(demo, made, suffix: str, **attrs):
    volume = demo.block_storage.create_volume(name=f"{PREFIX}-{suffix}", **attrs)
    made["volumes"].append(volume)
    return available(demo, volume)


def floating_ip(demo, made, server) -> str:
    public = demo.network.find_network("public", ignore_missing=False)
    port = next(demo.network.ports(device_id=server.id))
    ip = demo.network.create_ip(floating_network_id=public.id, port_id=port.id)
    made["ips"].append(ip)
    return ip.floating_ip_address


def boot(demo, made, name: str, **attrs):
    flavor = demo.compute.find_flavor("cirros256", ignore_missing=False)
    network = demo.network.find_network("private", ignore_missing=False)
    server = demo.compute.create_server(name=name, flavor_id=flavor.id, networks=[{"uuid": network.id}],
                                        key_name="minstack", **attrs)
    made["servers"].append(server)
    return demo.compute.wait_for_server(server, status="ACTIVE", wait=WAIT)


def guest_sees_disk(settings, address: str, present: bool = True) -> bool:
    found = ssh(settings, address, "test -b /dev/vdb && echo yes || echo no", timeout=20)
    return found.returncode == 0 and found.stdout.strip() == ("yes" if present else "no")


def attach(settings, demo, server, address: str, volume) -> None:
    """Attach and wait until Cinder says in-use and the guest has the disk."""
    demo.compute.create_volume_attachment(server, volume=volume)
    demo.block_storage.wait_for_status(volume, status="in-use", failures=["error", "error_attaching"], wait=WAIT)
    assert wait_until(lambda: guest_sees_disk(settings, address), 120), "the guest never saw /dev/vdb"


def detach(settings, demo, server, address: str, volume) -> None:
    demo.compute.delete_volume_attachment(server, volume)
    available(demo, volume)
    assert wait_until(lambda: guest_sees_disk(settings, address, present=False), 120), "/dev/vdb stayed"


def sectors(settings, address: str) -> int:
    proc = ssh(settings, address, "cat /sys/block/vdb/size")
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip())


def read_marker(settings, address: str) -> str:
    proc = ssh(settings, address, "sudo dd if=/dev/vdb bs=512 count=1 2>/dev/null | head -n 1")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip("\0\n")


@pytest.fixture(scope="module")
def verify_server(demo):
    found = demo.compute.find_server(SERVER)
    assert found is not None, f"{SERVER} does not exist: the verify phase boots it"
    return demo.compute.get_server(found.id)


@pytest.fixture(scope="module")
def verify_fip(demo, verify_server) -> str:
    port = next(demo.network.ports(device_id=verify_server.id))
    [ip] = list(demo.network.ips(port_id=port.id))
    return ip.floating_ip_address


@pytest.fixture(scope="module")
def volume(demo, made):
    """The volume the tests below pass along: 1 GB, empty, in the demo project."""
    found = new_volume(demo, made, "data", size=1)
    assert found.size == 1
    assert rbd_images()[f"volume-{found.id}"] == 2 ** 30  # an RBD image of its own, nothing on the host
    return found


@pytest.fixture(scope="module")
def reader(settings, demo, made, test_image):
    """A second instance (with a floating IP) that reads what the first wrote."""
    image = demo.image.find_image(test_image["name"], ignore_missing=False)
    server = boot(demo, made, READER, image_id=image.id)
    address = floating_ip(demo, made, server)
    assert wait_until(lambda: ssh(settings, address, "true", timeout=15).returncode == 0, WAIT), "no SSH"
    return server, address


def test_the_verify_instance_sees_a_new_disk_and_writes_a_marker(settings, demo, volume, verify_server, verify_fip):
    assert guest_sees_disk(settings, verify_fip, present=False), "/dev/vdb exists before the attach"
    attach(settings, demo, verify_server, verify_fip, volume)
    attachments = demo.block_storage.get_volume(volume).attachments
    assert [a["server_id"] for a in attachments] == [verify_server.id]
    assert sectors(settings, verify_fip) == GIB_SECTORS
    wrote = ssh(settings, verify_fip, f"printf '%s\\n' {MARKER} | sudo dd of=/dev/vdb bs=512 count=1 conv=sync,fsync "
                                      "2>/dev/null && sync")
    assert wrote.returncode == 0, wrote.stderr
    assert read_marker(settings, verify_fip) == MARKER
    detach(settings, demo, verify_server, verify_fip, volume)
    assert demo.block_storage.get_volume(volume).attachments == []


def marker_and_sectors(settings, demo, reader, volume) -> tuple[str, int]:
    """Attach volume to the reader instance: the marker on its disk and its size in sectors; detached again."""
    server, address = reader
    attach(settings, demo, server, address, volume)
    try:
        return read_marker(settings, address), sectors(settings, address)
    finally:
        detach(settings, demo, server, address, volume)


def test_a_second_instance_reads_the_marker_back(settings, demo, volume, reader):
    assert marker_and_sectors(settings, demo, reader, volume)[0] == MARKER


def test_volume_to_image_and_image_to_volume_keep_the_marker(settings, demo, made, volume, reader):
    name = f"{PREFIX}-image-{MARKER[-12:]}"
    uploaded = demo.block_storage.upload_volume_to_image(volume, name, disk_format="raw", container_format="bare")
    image = demo.image.get_image(uploaded["image_id"])
    made["images"].append(image)
    image = demo.image.wait_for_status(image, status="active", failures=["killed", "deleted"], wait=WAIT)
    available(demo, volume)  # back from "uploading"
    assert image.disk_format == "raw" and image.size == 2 ** 30
    again = new_volume(demo, made, "from-image", image_id=image.id, size=1)
    assert str(demo.block_storage.get_volume(again).is_bootable).lower() == "true"
    assert marker_and_sectors(settings, demo, reader, again)[0] == MARKER


def test_extend(demo, volume):
    demo.block_storage.extend_volume(volume, 2)
    # the volume is "available" before and after "extending": wait for the size, not the status
    deadline = time.monotonic() + WAIT
    while (now := demo.block_storage.get_volume(volume)).size != 2 and time.monotonic() < deadline:
        assert now.status != "error_extending", now
        time.sleep(1)
    assert now.size == 2 and now.status == "available", now
    assert rbd_images()[f"volume-{volume.id}"] == 2 * 2 ** 30


def test_a_snapshot_makes_a_new_volume_with_the_marker(settings, demo, made, volume, reader):
    snapshot = demo.block_storage.create_snapshot(volume_id=volume.id, name=f"{PREFIX}-snap")
    made["snapshots"].append(snapshot)
    demo.block_storage.wait_for_status(snapshot, status="available", failures=["error"], wait=WAIT)
    clone = new_volume(demo, made, "from-snapshot", snapshot_id=snapshot.id, size=2)
    # the extended size came along
    assert marker_and_sectors(settings, demo, reader, clone) == (MARKER, 2 * GIB_SECTORS)


def test_delete_removes_the_rbd_images(demo, made, volume):
    gone = [v.id for v in made["volumes"]]
    remove(demo, made["volumes"], made["snapshots"])  # the snapshot's clone, the snapshot, the volumes
    assert demo.block_storage.find_volume(volume.id) is None
    left = rbd_images()
    assert not [name for name in left if name.removeprefix("volume-") in gone], left


def test_boot_from_volume_answers_ssh_on_its_floating_ip(settings, demo, made, test_image):
    image = demo.image.find_image(test_image["name"], ignore_missing=False)
    root = new_volume(demo, made, "root", image_id=image.id, size=1)          # image -> volume
    server = boot(demo, made, BOOTED, block_device_mapping=[{                 # volume -> server
        "boot_index": 0, "uuid": root.id, "source_type": "volume", "destination_type": "volume",
        "delete_on_termination": False}])
    assert [a["id"] for a in demo.compute.get_server(server).attached_volumes] == [root.id]
    assert demo.block_storage.get_volume(root).status == "in-use"
    address = floating_ip(demo, made, server)
    assert wait_until(lambda: ssh(settings, address, "true", timeout=15).returncode == 0, WAIT), \
        "the server booted from a volume does not answer SSH"
    proc = ssh(settings, address, "hostname")
    assert proc.returncode == 0 and proc.stdout.strip().split(".")[0] == BOOTED
