"""Unit tests of the offline test image builder and the image's own scripts.

Fast and offline: no root, no network, no apt.  Commands go to a fake
runner; the guest's shell scripts run under the host's /bin/sh with fake
`ip`, `wget` and `timeout` on PATH.  tools/try-testimage.sh is the real
boot test.
"""

from __future__ import annotations

import lzma
import os
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from minstack import testimage as ti

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "files" / "testimage"

KERNEL = "linux-image-6.1.0-56-cloud-amd64"
APT_SHOW = f"""\
Package: linux-image-cloud-amd64
Version: 6.1.192-2
Depends: {KERNEL} (= 6.1.192-2)

""" + "".join(f"Package: {name}\nVersion: 1.0-{i}\n\n"
              for i, name in enumerate(ti.USERLAND_PACKAGES))


class FakeRun:
    """Records commands; answers apt-cache like bookworm does."""

    def __init__(self, show: str = APT_SHOW):
        self.calls: list[list[str]] = []
        self.show = show

    def __call__(self, cmd: list[str]) -> str:
        self.calls.append(list(cmd))
        if cmd[:2] == ["apt-cache", "show"]:
            if cmd[-1] == KERNEL and len(cmd) == 4:
                return f"Package: {KERNEL}\nVersion: 6.1.192-3\n"
            return self.show
        return ""


# ------------------------------------------------------------ inputs/key ---

def test_resolve_packages_pins_kernel_from_metapackage_in_one_call():
    run = FakeRun()
    packages = ti.resolve_packages(run)
    assert packages[KERNEL] == "6.1.192-2"
    assert "linux-image-cloud-amd64" not in packages
    assert set(ti.USERLAND_PACKAGES) <= set(packages)
    assert len(run.calls) == 1


def test_resolve_packages_asks_again_when_depends_has_no_version():
    run = FakeRun(APT_SHOW.replace(" (= 6.1.192-2)", ""))
    assert ti.resolve_packages(run)[KERNEL] == "6.1.192-3"
    assert run.calls[-1] == ["apt-cache", "show", "--no-all-versions", KERNEL]


def test_resolve_packages_names_what_apt_does_not_know():
    show = APT_SHOW.replace("Package: zlib1g\n", "Package: other\n")
    with pytest.raises(RuntimeError, match="zlib1g"):
        ti.resolve_packages(FakeRun(show))


def test_cache_key_follows_init_and_package_versions():
    packages = ti.resolve_packages(FakeRun())
    files = ti.input_files(FILES)
    key = ti.cache_key(packages, files)
    assert key == ti.cache_key(dict(packages), dict(files))  # stable
    changed_init = dict(files, init=files["init"] + b"# changed\n")
    assert ti.cache_key(packages, changed_init) != key
    newer = dict(packages, **{KERNEL: "6.1.192-9"})
    assert ti.cache_key(newer, files) != key
    assert len(key) == 12 and int(key, 16) >= 0


def test_cached_image_is_returned_without_building(tmp_path):
    run = FakeRun()
    key = ti.cache_key(ti.resolve_packages(FakeRun()), ti.input_files(FILES))
    cached = ti.image_path(tmp_path / "cache", key)
    cached.parent.mkdir()
    cached.write_bytes(b"qcow2")
    assert ti.build_test_image(tmp_path / "cache", tmp_path / "work", run) \
        == cached
    assert [c[:2] for c in run.calls] == [["apt-cache", "show"]]
    assert cached.name == f"minstack-testimage-{key}.qcow2"


def test_changed_init_misses_the_cache(tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    for src in FILES.iterdir():
        (files / src.name).write_bytes(src.read_bytes())
    old_key = ti.cache_key(ti.resolve_packages(FakeRun()),
                           ti.input_files(files))
    (files / "init").write_text("#!/bin/sh\necho changed\n")
    new_key = ti.cache_key(ti.resolve_packages(FakeRun()),
                           ti.input_files(files))
    assert old_key != new_key


def test_prune_keeps_only_the_current_image(tmp_path):
    keep = tmp_path / "minstack-testimage-new.qcow2"
    for name in ("minstack-testimage-old.qcow2", "minstack-testimage-old.json",
                 "minstack-testimage-new.json", "unrelated.qcow2"):
        (tmp_path / name).write_text("x")
    keep.write_text("x")
    ti._prune_old_images(tmp_path, keep)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "minstack-testimage-new.json", "minstack-testimage-new.qcow2",
        "unrelated.qcow2"]


# -------------------------------------------------------- command shapes ---

def test_download_uses_pinned_versions_in_the_scratch_dir(tmp_path):
    packages = {"busybox-static": "1:1.35.0-4", KERNEL: "6.1.192-2"}

    def run(cmd):
        run.cmd = cmd
        for name in packages:
            (tmp_path / f"{name}.deb").write_text("")
        return ""

    debs = ti.download_debs(packages, tmp_path, run)
    assert run.cmd[:3] == ["env", "-C", str(tmp_path)]
    assert "download" in run.cmd
    assert run.cmd[-2:] == ["busybox-static=1:1.35.0-4", f"{KERNEL}=6.1.192-2"]
    assert len(debs) == 2


def test_download_notices_missing_debs(tmp_path):
    with pytest.raises(RuntimeError, match="expected 1 .deb"):
        ti.download_debs({"x": "1"}, tmp_path, lambda cmd: "")


def test_boot_partition_commands_need_no_mount_or_loop(tmp_path):
    run = FakeRun()
    files = [tmp_path / "vmlinuz", tmp_path / "initrd.img"]
    part = tmp_path / "boot.part"
    ti.make_boot_partition(part, files, run)
    assert part.stat().st_size == (ti.DISK_MIB * 2048 - ti.PART_START) * 512
    tools = [c[0] if c[0] != "env" else c[2] for c in run.calls]
    assert tools == ["mkfs.fat", "syslinux", "mcopy"]
    mkfs = run.calls[0]
    assert mkfs[mkfs.index("-h") + 1] == str(ti.PART_START)  # hidden sectors
    assert run.calls[1] == ["syslinux", "--install", str(part)]
    assert run.calls[2][-3:] == [*map(str, files), "::/"]
    flat = " ".join(" ".join(c) for c in run.calls)
    assert "mount" not in flat and "losetup" not in flat


def test_default_run_reports_command_and_stderr():
    assert ti.default_run([sys.executable, "-c", "print('hi')"]) == "hi\n"
    with pytest.raises(RuntimeError, match=r"(?s)failed \(3\).*boom"):
        ti.default_run([sys.executable, "-c",
                        "import sys; sys.stderr.write('boom'); sys.exit(3)"])


# ------------------------------------------------------------- MBR/disk ---

def test_mbr_has_one_active_fat16_partition():
    sector = ti.mbr(b"\xfa" * 440, 2048, 129024)
    assert len(sector) == 512 and sector[510:] == b"\x55\xaa"
    assert sector[:440] == b"\xfa" * 440
    boot, chs_first, ptype, chs_last, start, size = struct.unpack_from(
        "<B3sB3sII", sector, 446)
    assert (boot, ptype, start, size) == (0x80, 0x0E, 2048, 129024)
    assert chs_first == bytes((32, 33, 0))  # LBA 2048 = C0 H32 S33
    assert sector[462:510] == b"\0" * 48  # the other three entries are empty


def test_chs_saturates_past_1024_cylinders():
    assert ti._chs(1024 * 255 * 63) == bytes((254, 0xFF, 0xFF))


def test_mbr_rejects_oversized_boot_code():
    with pytest.raises(ValueError):
        ti.mbr(b"\0" * 441, 2048, 100)


def test_make_disk_puts_partition_at_its_offset(tmp_path):
    part, code, disk = tmp_path / "p", tmp_path / "mbr.bin", tmp_path / "d"
    part.write_bytes(b"FAT!" + b"\0" * 1020)
    code.write_bytes(b"\xeb" * 440)
    ti.make_disk(disk, part, code)
    data = disk.read_bytes()
    assert len(data) == ti.PART_START * 512 + 1024
    assert data[ti.PART_START * 512:][:4] == b"FAT!"
    assert struct.unpack_from("<I", data, 446 + 12)[0] == 2  # sectors


# ----------------------------------------------------------------- cpio ---

def read_cpio(data: bytes) -> dict[str, tuple[int, int, bytes]]:
    """name -> (mode, rdev major<<8|minor, data) of a newc archive."""
    entries, pos = {}, 0
    while True:
        assert data[pos:pos + 6] == b"070701"
        fields = [int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16)
                  for i in range(13)]
        mode, uid, gid, size = fields[1], fields[2], fields[3], fields[6]
        namesize = fields[11]
        name = data[pos + 110:pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos:pos + size]
        pos += size
        pos += -pos % 4
        if name == "TRAILER!!!":
            return entries
        assert (uid, gid) == (0, 0)
        entries[name] = (mode, fields[9] << 8 | fields[10], body)


def test_cpio_is_root_owned_with_device_nodes(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "busybox").write_bytes(b"ELF")
    (tmp_path / "bin" / "busybox").chmod(0o755)
    (tmp_path / "bin" / "sh").symlink_to("busybox")
    (tmp_path / "dev").mkdir()
    entries = read_cpio(ti.cpio_newc(tmp_path, ti.DEVICE_NODES))
    assert list(entries)[:3] == ["bin", "bin/busybox", "bin/sh"]
    mode, _, body = entries["bin/busybox"]
    assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o755
    assert body == b"ELF"
    assert stat.S_ISLNK(entries["bin/sh"][0])
    assert entries["bin/sh"][2] == b"busybox"
    mode, rdev, _ = entries["dev/console"]
    assert stat.S_ISCHR(mode) and rdev == (5 << 8 | 1)


def test_cpio_keeps_setuid_bits_and_directory_symlinks(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "run").symlink_to("../run")
    (tmp_path / "sudo").write_bytes(b"ELF")
    (tmp_path / "sudo").chmod(0o4755)
    entries = read_cpio(ti.cpio_newc(tmp_path))
    assert stat.S_ISLNK(entries["var/run"][0])
    assert entries["var/run"][2] == b"../run"
    assert stat.S_IMODE(entries["sudo"][0]) == 0o4755


def test_cpio_is_reproducible(tmp_path):
    (tmp_path / "a").write_text("x")
    first = ti.cpio_newc(tmp_path)
    os.utime(tmp_path / "a", (0, 12345))
    assert ti.cpio_newc(tmp_path) == first


# ------------------------------------------------------------------ ELF ---

def test_elf_needs_of_a_dynamic_binary():
    binary = Path("/bin/sh").resolve()
    data = binary.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        pytest.skip("no 64-bit ELF /bin/sh here")
    interp, needed = ti.elf_needs(data)
    assert interp and "ld-linux" in interp
    assert "libc.so.6" in needed


def test_elf_needs_rejects_non_elf():
    with pytest.raises(ValueError):
        ti.elf_needs(b"#!/bin/sh\n")


def test_missing_library_names_the_soname(tmp_path):
    with pytest.raises(RuntimeError, match="libnope.so.1"):
        ti._find_lib(tmp_path, "libnope.so.1")


# -------------------------------------------------------------- modules ---

def fake_module(depends: str) -> bytes:
    return b"\x7fELF..." + b"\0license=GPL\0depends=" + depends.encode() \
        + b"\0vermagic=6.1\0"


def test_module_depends_parses_modinfo():
    assert ti.module_depends(fake_module("virtio,virtio_ring")) == [
        "virtio", "virtio_ring"]
    assert ti.module_depends(fake_module("")) == []


def test_copy_modules_takes_dependencies_and_decompresses(tmp_path):
    src = tmp_path / "src"
    kernel = src / "kernel" / "drivers"
    kernel.mkdir(parents=True)
    (kernel / "virtio_net.ko").write_bytes(fake_module("net_failover,virtio"))
    (kernel / "net_failover.ko.xz").write_bytes(
        lzma.compress(fake_module("failover"), check=lzma.CHECK_CRC32))
    (kernel / "failover.ko").write_bytes(fake_module(""))
    (kernel / "virtio.ko").write_bytes(fake_module(""))
    (kernel / "unwanted.ko").write_bytes(fake_module(""))
    (src / "modules.order").write_text("kernel/drivers/virtio.ko\n")
    dest = tmp_path / "dest"
    copied = ti.copy_modules(src, dest, ["virtio_net"])
    assert sorted(copied) == ["failover", "net_failover", "virtio",
                              "virtio_net"]
    assert (dest / "kernel/drivers/net_failover.ko").read_bytes() == \
        fake_module("failover")
    assert not (dest / "kernel/drivers/unwanted.ko").exists()
    assert (dest / "modules.order").exists()
    with pytest.raises(RuntimeError, match="nosuch"):
        ti.copy_modules(src, dest, ["nosuch"])


def test_module_list_covers_virtio_and_config_drive():
    wanted = ti.read_module_list(FILES / "modules")
    for name in ("virtio_pci", "virtio_blk", "virtio_net", "ata_piix",
                 "sr_mod", "isofs", "vfat"):
        assert name in wanted
    assert all("-" not in name and "#" not in name for name in wanted)


# ---------------------------------------------------------- image files ---

def test_every_image_file_is_wired_into_the_build():
    names = {p.name for p in FILES.iterdir()}
    assert names == set(ti.INITRAMFS_FILES) | {"syslinux.cfg"}
    for name, (_, mode) in ti.INITRAMFS_FILES.items():
        if mode & 0o111:
            assert (FILES / name).read_text().startswith("#!"), name


def test_image_has_what_tempest_runs_as_cirros():
    """sudo (setuid, passwordless for cirros), curl, util-linux blkid, a
    setuid busybox for ping, /var/run/udhcpc.eth0.pid (see try-testimage.sh
    for the real boot)."""
    assert ti.GUEST_BINARIES["usr/bin/sudo"] == 0o4755
    assert {"usr/bin/curl", "sbin/blkid", "usr/libexec/sudo/sudoers.so"} \
        <= set(ti.GUEST_BINARIES)
    assert ti.BUSYBOX_MODE == 0o4755
    assert ("var/run", "../run") in ti.INITRAMFS_LINKS
    assert ti.INITRAMFS_FILES["sudoers"] == ("etc/sudoers", 0o440)
    rules = [line.split() for line in (FILES / "sudoers").read_text().splitlines()
             if line and not line.startswith(("#", "Defaults"))]
    assert ["cirros", "ALL=(ALL)", "NOPASSWD:", "ALL"] in rules
    pam = (FILES / "pam-sudo").read_text()
    assert "auth     required pam_deny.so" in pam  # never a password
    init = (FILES / "init").read_text()
    assert "-p /run/udhcpc.eth0.pid" in init
    assert "\nprobe_block_devices\n" in init  # blkid's cache for cirros


def test_guest_binaries_need_only_packaged_libraries(tmp_path):
    """The ELF closure looks in sudo's private directory and names a missing
    soname rather than building an image whose sudo cannot start."""
    unpacked = tmp_path / "unpacked"
    private = unpacked / "usr" / "libexec" / "sudo"
    private.mkdir(parents=True)
    (private / "libsudo_util.so.0").write_bytes(b"lib")
    assert ti._find_lib(unpacked, "libsudo_util.so.0") == \
        private / "libsudo_util.so.0"


def test_syslinux_boots_serial_console_kernel_and_initrd():
    cfg = (FILES / "syslinux.cfg").read_text()
    assert "LINUX /vmlinuz" in cfg and "INITRD /initrd.img" in cfg
    assert "console=ttyS0" in cfg and "console=tty0" in cfg


def test_init_prints_marker_and_uses_timeout_not_wget_T():
    init = (FILES / "init").read_text()
    assert 'echo "$NAME login:"' in init
    assert ti.CONSOLE_MARKER == "minstack-testimage login:"
    assert "udhcpc -i eth0" in init and "-O staticroutes -O mtu" in init
    # busybox-static's wget -T segfaults: deadlines come from timeout(1)
    code = [line for line in (FILES / "metadata.sh").read_text().splitlines()
            if not line.lstrip().startswith("#")]
    assert any("timeout" in line and "wget" in line for line in code)
    assert not any("wget -T" in line for line in code)


def test_image_properties_for_glance():
    props = ti.image_properties()
    assert props["hw_disk_bus"] == "virtio"
    assert props["hw_vif_model"] == "virtio"
    assert props["hw_machine_type"] == "pc"
    assert ti.IMAGE_NAME == "minstack-testimage"
    assert (ti.DISK_FORMAT, ti.CONTAINER_FORMAT) == ("qcow2", "bare")
    assert ti.MIN_RAM_MB >= 128


def test_host_tool_list_names_the_build_tools():
    lines = (REPO / "files" / "debs" / "testimage").read_text().splitlines()
    packages = {line.split("#")[0].strip() for line in lines} - {""}
    assert {"syslinux", "syslinux-common", "mtools", "dosfstools",
            "qemu-utils", "kmod"} <= packages
    assert "busybox" not in packages and "busybox-static" not in packages


# ------------------------------------------------- guest scripts under sh ---

def fake_bin(tmp_path: Path, **scripts: str) -> Path:
    """A directory of fake commands, each logging its argv to calls.log."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for name, body in scripts.items():
        path = bindir / name
        path.write_text(f'#!/bin/sh\necho "{name} $*" >> "{tmp_path}/calls.log"\n'
                        + body)
        path.chmod(0o755)
    return bindir


def run_udhcpc(tmp_path: Path, event: str, **lease: str) -> list[str]:
    bindir = fake_bin(tmp_path, ip="")
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "interface": "eth0",
           "RESOLV_CONF": str(tmp_path / "resolv.conf"), **lease}
    subprocess.run(["sh", str(FILES / "udhcpc.script"), event], env=env,
                   check=True, capture_output=True)
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_udhcpc_applies_static_routes_mtu_and_ignores_router(tmp_path):
    calls = run_udhcpc(
        tmp_path, "bound", ip="10.0.0.5", mask="24", router="10.0.0.1",
        mtu="1442", dns="10.0.0.2", domain="example.org",
        staticroutes="169.254.169.254/32 10.0.0.2 0.0.0.0/0 10.0.0.1")
    assert "ip link set dev eth0 mtu 1442" in calls
    assert "ip addr replace 10.0.0.5/24 dev eth0" in calls
    assert "ip route replace 169.254.169.254/32 via 10.0.0.2 dev eth0" in calls
    assert "ip route replace 0.0.0.0/0 via 10.0.0.1 dev eth0" in calls
    # RFC 3442: option 121 carried the default route, so option 3 is unused
    assert not any(c.startswith("ip route replace default") for c in calls)
    assert (tmp_path / "resolv.conf").read_text() == \
        "search example.org\nnameserver 10.0.0.2\n"


def test_udhcpc_on_link_static_route_and_router_fallback(tmp_path):
    calls = run_udhcpc(
        tmp_path, "renew", ip="10.0.0.5", mask="24", router="10.0.0.1",
        staticroutes="169.254.169.254/32 0.0.0.0")
    assert "ip route replace 169.254.169.254/32 dev eth0" in calls
    assert "ip route replace default via 10.0.0.1 dev eth0" in calls
    assert not (tmp_path / "resolv.conf").exists()  # no dns in the lease


def test_udhcpc_without_static_routes_uses_first_router(tmp_path):
    calls = run_udhcpc(tmp_path, "bound", ip="10.0.0.5", mask="24",
                       router="10.0.0.1 10.0.0.254")
    assert calls[-1] == "ip route replace default via 10.0.0.1 dev eth0"
    assert not any("mtu" in c for c in calls)


def test_udhcpc_deconfig_flushes_address(tmp_path):
    assert run_udhcpc(tmp_path, "deconfig")[0] == "ip -4 addr flush dev eth0"


META_DATA = ('{"uuid": "u-1", "hostname": "vm-1.novalocal", "name": "vm-1",\n'
             ' "public_keys": {"k1": "ssh-ed25519 AAAA k1@host\\n",'
             ' "k2": "ssh-rsa BBB\\/CC k2\\n"},\n'
             ' "keys": [{"name": "k1", "type": "ssh", "data": "x"}]}')


def run_metadata_sh(tmp_path: Path, script: str, site: dict[str, str]
                    ) -> subprocess.CompletedProcess:
    """Source metadata.sh and run script; fake wget serves `site`."""
    root = tmp_path / "site"
    for path, content in site.items():
        (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / path.lstrip("/")).write_text(content)
    bindir = fake_bin(
        tmp_path,
        timeout='shift; exec "$@"\n',
        # wget -q -O FILE URL: copy from the fake site or fail like a 404
        wget=f'src="{root}/${{4#http://169.254.169.254/}}"\n'
             '[ -f "$src" ] && cp "$src" "$3"\n',
        sleep="")
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "OUT": str(out)}
    return subprocess.run(
        ["sh", "-c", f'. "{FILES / "metadata.sh"}"; {script}'],
        env=env, capture_output=True, text=True)


def test_metadata_parses_openstack_json(tmp_path):
    result = run_metadata_sh(
        tmp_path, 'md_fetch "$OUT" 2',
        {"/openstack/latest/meta_data.json": META_DATA})
    assert result.returncode == 0, result.stderr
    assert "attempt 1" in result.stdout
    out = tmp_path / "out"
    assert (out / "hostname").read_text() == "vm-1.novalocal\n"
    assert (out / "keys").read_text().splitlines() == [
        "ssh-ed25519 AAAA k1@host", "ssh-rsa BBB/CC k2"]


def test_metadata_falls_back_to_ec2_paths(tmp_path):
    result = run_metadata_sh(tmp_path, 'md_fetch "$OUT" 1', {
        "/latest/meta-data/hostname": "vm-2",
        "/latest/meta-data/public-keys/0/openssh-key": "ssh-ed25519 CCC k3\n"})
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    assert (out / "hostname").read_text() == "vm-2"
    assert (out / "keys").read_text() == "ssh-ed25519 CCC k3\n"


def test_metadata_gives_up_after_the_attempts(tmp_path):
    result = run_metadata_sh(tmp_path, 'md_fetch "$OUT" 3', {})
    assert result.returncode == 1
    assert "attempt 3/3" in result.stdout
    wgets = [c for c in (tmp_path / "calls.log").read_text().splitlines()
             if c.startswith("wget")]
    assert len(wgets) == 6  # OpenStack + EC2 path, three times
    timeouts = [c for c in (tmp_path / "calls.log").read_text().splitlines()
                if c.startswith("timeout")]
    assert len(timeouts) == len(wgets)  # every wget has a deadline


def test_json_parsing_tolerates_compact_json(tmp_path):
    compact = META_DATA.replace(": ", ":").replace("\n", "")
    (tmp_path / "md.json").write_text(compact)
    result = run_metadata_sh(
        tmp_path, f'json_hostname "{tmp_path}/md.json"; '
                  f'json_public_keys "{tmp_path}/md.json"', {})
    assert result.stdout.splitlines() == [
        "vm-1.novalocal", "ssh-ed25519 AAAA k1@host", "ssh-rsa BBB/CC k2"]



def test_missing_build_tools_fail_before_downloading(tmp_path, monkeypatch):
    monkeypatch.setattr(ti.shutil, "which", lambda tool: None)
    run = FakeRun()
    with pytest.raises(RuntimeError, match="files/debs/testimage"):
        ti.build_test_image(tmp_path / "cache", tmp_path / "work", run)
    assert all(c[0] == "apt-cache" for c in run.calls)
