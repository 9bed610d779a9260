"""Swift (enable_service swift in tests/functional/localrc): files, rings, processes, ports, the
object-store endpoint, and objects that round-trip byte for byte through the real CLI, 100 MB too."""
from __future__ import annotations

import hashlib
import os
import secrets

import pytest

from conftest import bash

ETC = "/etc/swift"
STORAGE = {"account": 6612, "container": 6611, "object": 6613}


def test_config_files_are_root_stack_0640(host, settings):
    directory = host.file(ETC)
    assert (directory.user, directory.group, directory.mode) == ("root", settings.stack_user, 0o750)
    for name in ("swift.conf", "proxy-server.conf", "account-server.conf", "container-server.conf",
                 "object-server.conf"):
        f = host.file(f"{ETC}/{name}")
        assert (f.user, f.group, f.mode) == ("root", settings.stack_user, 0o640), name
    assert "mount_check = false" in host.file(f"{ETC}/object-server.conf").content_string


@pytest.mark.parametrize("kind", sorted(STORAGE))
def test_each_ring_has_one_device_on_its_loopback_server(host, settings, kind):
    shown = host.run(f"{settings.venv}/bin/swift-ring-builder {ETC}/{kind}.builder")
    assert shown.rc == 0, shown.stderr
    assert "512 partitions, 1.000000 replicas" in shown.stdout
    assert f"127.0.0.1:{STORAGE[kind]}" in shown.stdout and "sdb1" in shown.stdout
    assert host.file(f"{ETC}/{kind}.ring.gz").exists


def test_storage_is_a_plain_directory_of_the_stack_user(host, settings):
    device = host.file(str(settings.data_dir / "swift" / "drives" / "sdb1"))
    assert device.is_directory and device.user == settings.stack_user


def test_servers_listen_where_they_should(host, settings):
    assert host.socket(f"tcp://{settings.service_host}:8080").is_listening
    for port in STORAGE.values():
        assert host.socket(f"tcp://127.0.0.1:{port}").is_listening
        assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening


def test_catalog_has_the_object_store(admin_conn, settings):
    [service] = [s for s in admin_conn.identity.services() if s.type == "object-store"]
    urls = {e.interface: e.url for e in admin_conn.identity.endpoints(service_id=service.id)}
    assert urls == {i: f"http://{settings.service_host}:8080/v1/AUTH_$(project_id)s"
                    for i in ("public", "internal", "admin")}


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@pytest.mark.parametrize("size", [1 << 20, 100 << 20], ids=["1MB", "100MB"])
def test_an_object_round_trips_byte_for_byte(tmp_path, size):
    container = f"minstack-test-{secrets.token_hex(4)}"
    source, back = tmp_path / "source.bin", tmp_path / "back.bin"
    with open(source, "wb") as f:
        for _ in range(size >> 20):
            f.write(os.urandom(1 << 20))
    os.chmod(tmp_path, 0o755)
    assert bash(f"source openrc && openstack container create {container}").returncode == 0
    try:
        made = bash(f"source openrc && cd {tmp_path} && openstack object create {container} source.bin", timeout=600)
        assert made.returncode == 0, made.stderr
        listed = bash(f"source openrc && openstack object list {container} -f value -c Name")
        assert listed.stdout.split() == ["source.bin"]
        saved = bash(f"source openrc && openstack object save --file {back} {container} source.bin", timeout=600)
        assert saved.returncode == 0, saved.stderr
        assert back.stat().st_size == size and sha256(back) == sha256(source)
    finally:
        bash(f"source openrc && openstack object delete {container} source.bin")
        deleted = bash(f"source openrc && openstack container delete {container}")
        assert deleted.returncode == 0, deleted.stderr
