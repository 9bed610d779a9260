"""Image naming, resumable download, checksum refusal and UEC tarball handling (no network: file:// URLs)."""
import hashlib
import io
import logging
import tarfile
from types import SimpleNamespace

import pytest

from minstack import images

LOG = logging.getLogger("test.images")


@pytest.mark.parametrize("url, name", [
    ("https://x/cirros-0.6.3-x86_64-disk.img", "cirros-0.6.3-x86_64-disk"),
    ("https://x/a/b/ubuntu.qcow2", "ubuntu"),
    ("https://x/cirros-0.3.5-x86_64-uec.tar.gz", "cirros-0.3.5-x86_64-uec"),
    ("https://x/noext", "noext"),
])
def test_image_name(url, name):
    assert images.image_name(url) == name


def publish(tmp_path, name, data, sums=None):
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / name).write_bytes(data)
    if sums is not None:
        (site / "SHA256SUMS").write_text(sums)
    return f"file://{site}/{name}"


def test_download_once_and_verify_published_sum(tmp_path):
    data = b"disk" * 1000
    url = publish(tmp_path, "img.qcow2", data, f"{hashlib.sha256(data).hexdigest()}  img.qcow2\n")
    path = images.download(url, tmp_path / "cache", LOG)
    assert path.read_bytes() == data
    (tmp_path / "site" / "img.qcow2").unlink()  # cached: the publisher is not asked again
    assert images.download(url, tmp_path / "cache", LOG) == path
    assert images.cached_path(url, tmp_path / "cache") == path  # where the functional suite looks


def test_download_refuses_a_checksum_mismatch(tmp_path):
    url = publish(tmp_path, "img.qcow2", b"tampered", "0" * 64 + "  img.qcow2\n")
    with pytest.raises(images.DownloadFailed, match="sha256 does not match"):
        images.download(url, tmp_path / "cache", LOG)
    assert not list((tmp_path / "cache").iterdir())


def test_download_failure_is_a_clear_error(tmp_path):
    with pytest.raises(images.DownloadFailed, match="cannot download"):
        images.download(f"file://{tmp_path}/missing.img", tmp_path / "cache", LOG)


def test_uec_tarball_gives_kernel_ramdisk_and_machine_image(tmp_path):
    tarball = tmp_path / "cirros-uec.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for member in ("cirros-vmlinuz", "cirros-initrd", "cirros-blank.img"):
            info = tarfile.TarInfo(member)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"data"))
    items = images.files_to_upload(None, tarball, "cirros-uec", tmp_path / "work")
    assert [(i.name, i.disk_format, i.path.name) for i in items] == [
        ("cirros-uec-kernel", "aki", "cirros-vmlinuz"),
        ("cirros-uec-ramdisk", "ari", "cirros-initrd"),
        ("cirros-uec", "ami", "cirros-blank.img")]
    assert (items[2].kernel_of, items[2].ramdisk_of) == ("cirros-uec-kernel", "cirros-uec-ramdisk")


def test_record_of_uploaded_images(tmp_path):
    settings = SimpleNamespace(state_dir=tmp_path)
    assert images.uploaded(settings) == []
    images.record_file(settings).write_text('[{"name": "x", "marker": "login:", "offline": false}]')
    assert images.uploaded(settings)[0]["name"] == "x"
