"""Test images: downloaded once into files/cache (resumable, checksummed when the
publisher offers sums), or built offline; uploaded to Glance with the right format."""
from __future__ import annotations

import hashlib
import json
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from minstack.errors import MinstackError

CHUNK = 1 << 20


class DownloadFailed(MinstackError):
    pass


@dataclass
class ImageFile:
    """One file to upload (a UEC tarball gives three: kernel, ramdisk, machine image)."""
    name: str
    path: Path
    disk_format: str
    container_format: str = "bare"
    properties: dict = field(default_factory=dict)
    kernel_of: str | None = None   # for a UEC machine image: names of its kernel and ramdisk
    ramdisk_of: str | None = None


def record_file(settings) -> Path:
    """Which bootable images this stack uploaded, for the verify phase: [{name, marker, offline}]."""
    return settings.state_dir / "images.json"


def uploaded(settings) -> list[dict]:
    path = record_file(settings)
    return json.loads(path.read_text()) if path.exists() else []


def image_name(url: str) -> str:
    """DevStack's naming: the file name without its extension (cirros-0.6.3-x86_64-disk)."""
    base = Path(urllib.parse.urlparse(url).path).name
    for suffix in (".tar.gz", ".tgz", ".qcow2", ".img", ".raw", ".vmdk", ".vhd", ".iso"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def published_sha256(url: str, timeout: float = 20) -> str | None:
    """The image's sha256 from a SHA256SUMS beside it, when the publisher has one."""
    sums_url = url.rsplit("/", 1)[0] + "/SHA256SUMS"
    try:
        with urllib.request.urlopen(sums_url, timeout=timeout) as response:
            text = response.read().decode(errors="replace")
    except (OSError, urllib.error.URLError):
        return None
    wanted = Path(urllib.parse.urlparse(url).path).name
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == wanted:
            return parts[0].lower()
    return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_path(url: str, cache: Path) -> Path:
    """Where download() keeps url's file: the cache, under the URL's file name."""
    return cache / Path(urllib.parse.urlparse(url).path).name


def download(url: str, cache: Path, log, timeout: float = 30) -> Path:
    """Download url into cache once; a partial download resumes (HTTP Range)."""
    cache.mkdir(parents=True, exist_ok=True)
    target = cached_path(url, cache)
    if target.exists():
        return target
    partial = target.with_name(target.name + ".part")
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(partial, "ab") as out:
            if have and response.status != 206:  # the server ignored Range: start over
                out.truncate(0)
            log.info("downloading %s%s", url, f" (resuming at {have} bytes)" if have else "")
            for chunk in iter(lambda: response.read(CHUNK), b""):
                out.write(chunk)
    except (OSError, urllib.error.URLError) as exc:
        raise DownloadFailed(f"cannot download {url}: {getattr(exc, 'reason', exc)}") from exc
    expected = published_sha256(url)
    if expected and sha256_of(partial) != expected:
        partial.unlink()
        raise DownloadFailed(f"{url}: sha256 does not match the published SHA256SUMS; removed")
    log.info("sha256 %s", "verified against SHA256SUMS" if expected else "not published; not verified")
    partial.rename(target)
    return target


def probe_format(sh, path: Path) -> str:
    """qcow2, raw, vmdk, … as qemu-img reads the file (never trust the extension)."""
    info = json.loads(sh.output(["qemu-img", "info", "--output", "json", path]))
    return info["format"]


def files_to_upload(sh, path: Path, name: str, work: Path) -> list[ImageFile]:
    """A disk image is one upload; a UEC tarball is a kernel, a ramdisk and a machine image."""
    if path.name.endswith((".tar.gz", ".tgz")):
        return uec_files(path, name, work)
    return [ImageFile(name, path, probe_format(sh, path))]


def uec_files(tarball: Path, name: str, work: Path) -> list[ImageFile]:
    target = work / name
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(target, filter="data")
    members = [p for p in target.rglob("*") if p.is_file()]

    def pick(*words: str) -> Path:
        for p in members:
            if any(w in p.name for w in words):
                return p
        raise MinstackError(f"{tarball}: no {'/'.join(words)} inside this UEC tarball")

    kernel, ramdisk = pick("vmlinuz", "kernel"), pick("initrd", "initramfs", "ramdisk")
    machine = pick(".img")
    return [
        ImageFile(f"{name}-kernel", kernel, "aki", "aki"),
        ImageFile(f"{name}-ramdisk", ramdisk, "ari", "ari"),
        ImageFile(name, machine, "ami", "ami", kernel_of=f"{name}-kernel", ramdisk_of=f"{name}-ramdisk"),
    ]


def ensure_uploaded(conn, item: ImageFile, log) -> object:
    """Upload item unless an active image of that name exists (public, as in DevStack)."""
    existing = [i for i in conn.image.images(name=item.name) if i.status == "active"]
    if existing:
        return existing[0]
    properties = dict(item.properties)
    if item.kernel_of:
        properties["kernel_id"] = conn.image.find_image(item.kernel_of).id
        properties["ramdisk_id"] = conn.image.find_image(item.ramdisk_of).id
    log.info("uploading %s (%s, %d bytes) as %s", item.path, item.disk_format, item.path.stat().st_size,
             item.name)
    return conn.image.create_image(name=item.name, filename=str(item.path), disk_format=item.disk_format,
                                   container_format=item.container_format, visibility="public",
                                   wait=True, timeout=600, allow_duplicates=False, **properties)
