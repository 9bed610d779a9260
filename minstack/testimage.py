"""Offline test image: a CirrOS stand-in built from Debian packages.

When CirrOS cannot be downloaded (or OFFLINE=True) minstack still needs a
guest that proves Nova + Neutron work end to end: DHCP (with the metadata
static route and the MTU), the metadata service or a config drive, SSH with
an injected key, and a console log a test can grep.  This module builds one.
It behaves like CirrOS wherever Tempest's scenario tests (and workshop
attendees) rely on it: a `cirros` user with passwordless sudo, curl, ping as
that user, util-linux blkid, udhcpc's pid file in /var/run, hot-plugged NICs
that `sudo ip` brings up.

The image is a whole-disk qcow2: an MBR, one FAT16 partition with SYSLINUX,
Debian's cloud kernel and a busybox initramfs whose /init does everything
(files/testimage/), plus a few real Debian binaries (GUEST_BINARIES).
Everything that goes INTO the image comes from ``apt-get download`` +
``dpkg-deb -x``, so nothing is installed on the host
(busybox-static would conflict with busybox).  The build tools are the host
packages in files/debs/testimage.  No loop devices, mounts or root-only
tricks: the partition is made as a separate file with mkfs.fat, syslinux and
mcopy (mtools), then copied into the disk image at its offset.

Only the standard library is used here: minstack calls this before its own
virtualenv necessarily has anything else in it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import stat
import struct
import threading
import subprocess
from pathlib import Path
from typing import Callable, Iterable

IMAGE_NAME = "minstack-testimage"
CONSOLE_MARKER = "minstack-testimage login:"
DISK_FORMAT = "qcow2"
CONTAINER_FORMAT = "bare"
# Glance min_ram: at 64 MiB the kernel (LZ4, ~14 MB) and initramfs do not
# fit and the guest hangs silently right after SYSLINUX; 128 MiB boots.
MIN_RAM_MB = 128

Runner = Callable[[list[str]], str]

FILES_DIR = Path(__file__).resolve().parent.parent / "files" / "testimage"

# Debian's kernel built for VMs: virtio and ata_piix as modules, no AHCI.
KERNEL_METAPACKAGE = "linux-image-cloud-amd64"
# Userland packages unpacked into the initramfs.  busybox-static gives the
# shell and most commands; the rest are real Debian binaries where Tempest
# and workshop attendees rely on their exact behaviour (see GUEST_BINARIES),
# then the shared libraries those need (checked at build time, see
# _copy_elf_closure: a missing one names its soname).
USERLAND_PACKAGES = (
    "busybox-static",
    "dropbear-bin",
    "sudo",
    "libpam0g",
    "libpam-modules",
    "curl",
    "libcurl4",
    "util-linux",
    "libblkid1",
    # libraries
    "libc6",
    "libaudit1",
    "libbrotli1",
    "libcap-ng0",
    "libcom-err2",
    "libcrypt1",
    "libffi8",
    "libgmp10",
    "libgnutls30",
    "libgssapi-krb5-2",
    "libhogweed6",
    "libidn2-0",
    "libk5crypto3",
    "libkeyutils1",
    "libkrb5-3",
    "libkrb5support0",
    "libldap-2.5-0",
    "libnettle8",
    "libnghttp2-14",
    "libp11-kit0",
    "libpcre2-8-0",
    "libpsl5",
    "librtmp1",
    "libsasl2-2",
    "libselinux1",
    "libssh2-1",
    "libssl3",
    "libtasn1-6",
    "libtomcrypt1",
    "libtommath1",
    "libunistring2",
    "libzstd1",
    "zlib1g",
)

# files/testimage/<name> -> (path in the initramfs, mode).  syslinux.cfg is
# not here: it goes onto the FAT partition.
INITRAMFS_FILES = {
    "init": ("init", 0o755),
    "udhcpc.script": ("etc/udhcpc.script", 0o755),
    "metadata.sh": ("etc/minstack/metadata.sh", 0o644),
    "modules": ("etc/minstack/modules", 0o644),
    "inittab": ("etc/inittab", 0o644),
    "passwd": ("etc/passwd", 0o644),
    "group": ("etc/group", 0o644),
    "shells": ("etc/shells", 0o644),
    "issue": ("etc/issue", 0o644),
    "nsswitch.conf": ("etc/nsswitch.conf", 0o644),
    # sudo refuses a sudoers file that anyone but root could change
    "sudoers": ("etc/sudoers", 0o440),
    "pam-sudo": ("etc/pam.d/sudo", 0o644),
    "pam-other": ("etc/pam.d/other", 0o644),
    "acpi-power": ("etc/acpi/PWRF/00000080", 0o755),
}
INITRAMFS_DIRS = ("dev", "proc", "sys", "run", "tmp", "mnt/config", "root",
                  "home/cirros", "etc/dropbear", "var/log", "var/www",
                  "var/lib/sudo")
# Symlinks in the initramfs: (path, target).  /var/run is /run, as on
# CirrOS: Tempest reads udhcpc's pid file as /var/run/udhcpc.<nic>.pid.
INITRAMFS_LINKS = (("var/run", "../run"),)
# busybox is setuid root, as on CirrOS, so that `ping` works for cirros:
# busybox ping needs a raw socket (it has no ICMP datagram sockets), and the
# busybox shell runs its own ping applet even where a real /bin/ping exists
# (Debian builds busybox-static to prefer applets).  busybox drops the
# privilege at once for every applet not marked as needing it (its
# FEATURE_SUID: sh, cat, touch, ... run as the user); ping, traceroute,
# findfs, mount and umount keep it, and mount/umount refuse non-root users
# themselves.  No /etc/busybox.conf: with one, busybox-static's user lookup
# segfaults.
BUSYBOX_MODE = 0o4755
# Dynamically linked files taken from the packages, with their modes; the
# shared libraries they need come along (_copy_elf_closure).  Where one of
# them has a busybox applet of the same name, the real one wins: /init's
# `busybox --install -s` never replaces an existing file.
#   dropbear      the SSH server and its host key generator
#   sudo          cirros runs `sudo <command>` without a password (sudoers);
#                 setuid root, its policy plugin and the two PAM modules
#                 pam.d/sudo names come along
#   curl          Tempest reads (and POSTs to) the metadata service with it
#   blkid         util-linux's: `blkid -L config-2 -o device` finds the
#                 config drive (busybox blkid takes no options)
GUEST_BINARIES = {
    "usr/sbin/dropbear": 0o755,
    "usr/bin/dropbearkey": 0o755,
    "usr/bin/sudo": 0o4755,
    "usr/libexec/sudo/sudoers.so": 0o644,
    "lib/x86_64-linux-gnu/security/pam_permit.so": 0o644,
    "lib/x86_64-linux-gnu/security/pam_deny.so": 0o644,
    "usr/bin/curl": 0o755,
    "sbin/blkid": 0o755,
}
LIB_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu")
# Where else a library may sit in its package (sudo's RUNPATH); the image
# keeps every library in LIB_DIRS[0], which the loader always searches.
LIB_SEARCH_DIRS = (*LIB_DIRS, "usr/libexec/sudo")

# Disk geometry: 1 MiB alignment before the partition, 64 MiB in all; the
# cloud kernel (~14 MB) and initramfs (~12 MB) leave plenty of room.
SECTOR = 512
PART_START = 2048
DISK_MIB = 64
MBR_CANDIDATES = ("/usr/lib/syslinux/mbr/mbr.bin", "/usr/lib/SYSLINUX/mbr.bin")
HOST_TOOLS = ("apt-get", "apt-cache", "dpkg-deb", "depmod", "mkfs.fat",
              "syslinux", "mcopy", "qemu-img")

# Bump when this module changes the image in a way the inputs don't show.
BUILD_FORMAT = 2


def image_properties() -> dict[str, str]:
    """Glance properties that make Nova boot the image the way it was tested.

    Machine type pc because its cdrom is IDE (the cloud kernel lacks the AHCI
    that q35's SATA cdrom needs, and the config drive is a cdrom).
    """
    return {
        "hw_disk_bus": "virtio",
        "hw_vif_model": "virtio",
        "hw_machine_type": "pc",
        "hw_cdrom_bus": "ide",
        "os_type": "linux",
    }


# --------------------------------------------------------------- running ---

def default_run(cmd: list[str]) -> str:
    """Run a command; return its stdout or raise with the command and stderr."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"{proc.stderr.strip()}")
    return proc.stdout


# ---------------------------------------------------------------- inputs ---

def resolve_packages(run: Runner) -> dict[str, str]:
    """Package name -> candidate version of everything unpacked into the image.

    The kernel metapackage stands for the versioned kernel package it
    depends on (that one holds the kernel and modules); its Depends line
    usually pins the version too, which saves a second, slow apt-cache run.
    """
    names = [KERNEL_METAPACKAGE, *USERLAND_PACKAGES]
    shown = run(["apt-cache", "show", "--no-all-versions", *names])
    match = re.search(r"^Depends:.*?\b(linux-image-[^\s,]+)(?: \(= ([^)]+)\))?",
                      _stanza(shown, KERNEL_METAPACKAGE), re.M)
    if not match:
        raise RuntimeError(f"no kernel package among the dependencies of "
                           f"{KERNEL_METAPACKAGE}")
    kernel, kernel_version = match.groups()
    versions = parse_apt_show(shown)
    if kernel_version:
        versions[kernel] = kernel_version
    else:
        versions.update(parse_apt_show(
            run(["apt-cache", "show", "--no-all-versions", kernel])))
    names = [kernel, *USERLAND_PACKAGES]
    missing = [name for name in names if name not in versions]
    if missing:
        raise RuntimeError(f"apt knows no version of {', '.join(missing)} "
                           "(did apt-get update run?)")
    return {name: versions[name] for name in names}


def _stanza(text: str, package: str) -> str:
    for stanza in text.split("\n\n"):
        if re.search(rf"^Package: {re.escape(package)}$", stanza, re.M):
            return stanza
    return ""


def parse_apt_show(text: str) -> dict[str, str]:
    """Package -> Version from `apt-cache show` stanzas (first one wins)."""
    versions: dict[str, str] = {}
    for stanza in text.split("\n\n"):
        fields = dict(re.findall(r"^(Package|Version): (\S+)$", stanza, re.M))
        if "Package" in fields and "Version" in fields:
            versions.setdefault(fields["Package"], fields["Version"])
    return versions


def input_files(files_dir: Path) -> dict[str, bytes]:
    """The image's own files (init, scripts, configs) by name."""
    return {p.name: p.read_bytes()
            for p in sorted(files_dir.iterdir()) if p.is_file()}


def cache_key(packages: dict[str, str], files: dict[str, bytes]) -> str:
    """Short hash of everything the image is built from.

    It names the cached qcow2, so a changed init script or a kernel update
    from Debian yields a new file and a rebuild, and nothing else does.
    """
    digest = hashlib.sha256(f"format={BUILD_FORMAT}\n".encode())
    for name, version in sorted(packages.items()):
        digest.update(f"deb {name}={version}\n".encode())
    for name, content in sorted(files.items()):
        digest.update(f"file {name} {len(content)}\n".encode())
        digest.update(content)
    return digest.hexdigest()[:12]


def image_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"{IMAGE_NAME}-{key}.qcow2"


# ---------------------------------------------------------------- the API ---

def build_test_image(cache_dir: Path, work_dir: Path,
                     run: Runner | None = None, *,
                     files_dir: Path = FILES_DIR) -> Path:
    """Return the cached test image, building it first if its inputs changed.

    cache_dir keeps ``minstack-testimage-<key>.qcow2`` and a ``.json``
    manifest beside it; work_dir gets a scratch tree, removed on success and
    kept on failure for a look.  ``run`` executes commands (minstack passes
    its logging wrapper); it must raise on failure.
    """
    run = run or default_run
    cache_dir, work_dir = Path(cache_dir), Path(work_dir)
    packages = resolve_packages(run)
    files = input_files(files_dir)
    key = cache_key(packages, files)
    target = image_path(cache_dir, key)
    if target.exists():
        return target

    check_host_tools()
    scratch = work_dir / f"{IMAGE_NAME}-build"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    disk = _build_disk(scratch, packages, files_dir, run)

    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.partial")  # one per builder
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2",
         str(disk), str(partial)])
    partial.replace(target)  # atomic: a crash never leaves a half image
    _write_manifest(target, key, packages, files)
    _prune_old_images(cache_dir, keep=target)
    shutil.rmtree(scratch, ignore_errors=True)
    return target


def check_host_tools() -> None:
    missing = [tool for tool in HOST_TOOLS if not shutil.which(tool)]
    if not _find_mbr():
        missing.append("syslinux MBR (mbr.bin)")
    if missing:
        raise RuntimeError(
            f"test image build tools missing: {', '.join(missing)}; "
            "install the packages in files/debs/testimage")


def _build_disk(scratch: Path, packages: dict[str, str], files_dir: Path,
                run: Runner) -> Path:
    """Download, unpack and assemble; returns the raw disk image."""
    debs, unpacked = scratch / "debs", scratch / "unpacked"
    debs.mkdir()
    unpacked.mkdir()
    for deb in download_debs(packages, debs, run):
        run(["dpkg-deb", "-x", str(deb), str(unpacked)])
    kver = kernel_version(unpacked)
    initrd = _make_initrd(scratch, unpacked, kver, files_dir, run)

    # syslinux.cfg boots plain "vmlinuz", whatever the kernel's version.
    kernel = scratch / "vmlinuz"
    shutil.copyfile(unpacked / "boot" / f"vmlinuz-{kver}", kernel)
    part = scratch / "boot.part"
    make_boot_partition(part, [kernel, initrd, files_dir / "syslinux.cfg"],
                        run)
    disk = scratch / "disk.raw"
    make_disk(disk, part, Path(_find_mbr() or "mbr.bin"))
    return disk


def _make_initrd(scratch: Path, unpacked: Path, kver: str, files_dir: Path,
                 run: Runner) -> Path:
    tree = scratch / "initramfs"
    assemble_initramfs(tree, unpacked, kver, files_dir)
    run(["depmod", "-b", str(tree), kver])
    initrd = scratch / "initrd.img"
    # gzip -6: the kernel unpacks it fast even under TCG; -9 or xz would
    # spend seconds of build time to save a few hundred KB.
    initrd.write_bytes(gzip.compress(cpio_newc(tree, DEVICE_NODES),
                                     compresslevel=6, mtime=0))
    return initrd


def download_debs(packages: dict[str, str], dest: Path,
                  run: Runner) -> list[Path]:
    """apt-get download the exact versions the cache key was made from."""
    # apt-get download writes to the current directory; env -C sets it
    # without a shell.  The sandbox option keeps apt from trying (and
    # warning about) the _apt user, who cannot write into our scratch dir.
    run(["env", "-C", str(dest), "apt-get", "-q",
         "-o", "APT::Sandbox::User=root", "-o", "Acquire::Retries=3",
         "download",
         *(f"{name}={version}" for name, version in sorted(packages.items()))])
    debs = sorted(dest.glob("*.deb"))
    if len(debs) != len(packages):
        raise RuntimeError(f"expected {len(packages)} .deb files in {dest}, "
                           f"found {len(debs)}")
    return debs


def kernel_version(unpacked: Path) -> str:
    kernels = sorted((unpacked / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise RuntimeError(f"expected one kernel in {unpacked}/boot, "
                           f"found {[k.name for k in kernels]}")
    return kernels[0].name[len("vmlinuz-"):]


# ------------------------------------------------------------ initramfs ---

# Nodes the kernel needs before /init mounts devtmpfs: without /dev/console
# it starts init with no stdin/stdout.  Made here because mknod needs root.
DEVICE_NODES = (("dev/console", stat.S_IFCHR | 0o600, 5, 1),
                ("dev/null", stat.S_IFCHR | 0o666, 1, 3))


def assemble_initramfs(tree: Path, unpacked: Path, kver: str,
                       files_dir: Path) -> None:
    """Lay out the initramfs: busybox, the real binaries + libs, modules, our files."""
    for directory in INITRAMFS_DIRS:
        (tree / directory).mkdir(parents=True, exist_ok=True)
    _install(unpacked / "bin" / "busybox", tree / "bin" / "busybox", BUSYBOX_MODE)
    for name, (dest, mode) in INITRAMFS_FILES.items():
        _install(files_dir / name, tree / dest, mode)
    for binary, mode in GUEST_BINARIES.items():
        _install(unpacked / binary, tree / binary, mode)
    _copy_elf_closure(tree, unpacked, GUEST_BINARIES)
    for link, target in INITRAMFS_LINKS:
        (tree / link).symlink_to(target)
    wanted = read_module_list(files_dir / "modules")
    copy_modules(unpacked / "lib" / "modules" / kver,
                 tree / "lib" / "modules" / kver, wanted)


def _install(src: Path, dest: Path, mode: int) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)  # follows symlinks: the image gets the file
    dest.chmod(mode)


def _copy_elf_closure(tree: Path, unpacked: Path,
                      binaries: Iterable[str]) -> None:
    """Copy the loader and every shared library the binaries need, recursively.

    Libraries land in /lib/x86_64-linux-gnu, which glibc's loader searches
    without an ld.so.cache.  A missing one fails the build here, naming the
    library, rather than leaving an image whose sshd (or sudo) cannot start.
    """
    todo = [unpacked / b for b in binaries]
    seen: set[str] = set()
    while todo:
        interp, needed = elf_needs(todo.pop().read_bytes())
        if interp and interp not in seen:
            seen.add(interp)
            _install(_find_lib(unpacked, Path(interp).name),
                     tree / interp.lstrip("/"), 0o755)
        for soname in needed:
            if soname in seen:
                continue
            seen.add(soname)
            lib = _find_lib(unpacked, soname)
            _install(lib, tree / LIB_DIRS[0] / soname, 0o755)
            todo.append(lib)


def _find_lib(unpacked: Path, soname: str) -> Path:
    for directory in LIB_SEARCH_DIRS:
        candidate = unpacked / directory / soname
        if candidate.exists():  # relative symlinks resolve inside the tree
            return candidate
    raise RuntimeError(f"{soname} is in none of the unpacked packages: "
                       "add its package to USERLAND_PACKAGES")


def elf_needs(data: bytes) -> tuple[str | None, list[str]]:
    """(PT_INTERP, DT_NEEDED sonames) of a 64-bit little-endian ELF image."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads, dynamic, interp = [], None, None
    for i in range(phnum):
        p_type, _, offset, vaddr, _, filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 1:  # PT_LOAD
            loads.append((vaddr, offset, filesz))
        elif p_type == 2:  # PT_DYNAMIC
            dynamic = (offset, filesz)
        elif p_type == 3:  # PT_INTERP
            interp = data[offset:offset + filesz].rstrip(b"\0").decode()
    if dynamic is None:
        return interp, []
    needed, strtab = [], None
    for pos in range(dynamic[0], dynamic[0] + dynamic[1], 16):
        tag, value = struct.unpack_from("<qQ", data, pos)
        if tag == 0:  # DT_NULL
            break
        if tag == 1:  # DT_NEEDED: offset into the string table
            needed.append(value)
        elif tag == 5:  # DT_STRTAB: a virtual address
            strtab = value
    base = next(off + strtab - va for va, off, size in loads
                if strtab is not None and va <= strtab < va + size)
    return interp, [data[base + n:data.index(b"\0", base + n)].decode()
                    for n in needed]


# --------------------------------------------------------------- modules ---

def read_module_list(path: Path) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(_module_name(line))
    return names


def _module_name(name: str) -> str:
    """Kernel module names use '_' where file names may use '-'."""
    for suffix in (".xz", ".gz", ".zst"):
        name = name.removesuffix(suffix)
    return name.removesuffix(".ko").replace("-", "_")


def module_depends(ko: bytes) -> list[str]:
    """The modules this one depends on, from its .modinfo "depends=" string."""
    match = re.search(rb"(?:^|\0)depends=([^\0]*)\0", ko)
    if not match or not match.group(1):
        return []
    return [_module_name(d) for d in match.group(1).decode().split(",")]


def _read_module(path: Path) -> bytes:
    """A module's bytes; newer Debian kernels ship them compressed."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        raise RuntimeError(f"{path}: zstd-compressed modules are not "
                           "supported (the standard library cannot read them)")
    return data


def copy_modules(src: Path, dest: Path, wanted: Iterable[str]) -> list[str]:
    """Copy the wanted modules and their dependencies, uncompressed.

    Uncompressed because busybox modprobe may not read compressed modules and
    the initramfs is compressed as a whole anyway.  Returns the copied names.
    """
    index = {_module_name(p.name): p for p in (src / "kernel").rglob("*.ko*")}
    todo, done = list(wanted), []
    while todo:
        name = todo.pop(0)
        if name in done:
            continue
        if name not in index:
            raise RuntimeError(f"kernel module {name} not in {src}")
        path = index[name]
        data = _read_module(path)
        rel = path.relative_to(src).as_posix()
        out = dest / re.sub(r"\.ko\.(xz|gz|zst)$", ".ko", rel)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        done.append(name)
        todo.extend(module_depends(data))
    for meta in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if (src / meta).exists():  # depmod -b wants them for builtin modules
            shutil.copyfile(src / meta, dest / meta)
    return done


# ------------------------------------------------------------------ cpio ---

def cpio_newc(tree: Path, extra_nodes: Iterable[tuple[str, int, int, int]] = ()
              ) -> bytes:
    """The tree as a "newc" cpio archive, the format the kernel unpacks.

    Written here rather than with cpio(1) so every entry is owned by root
    and dated 0 without running as root (and the build is reproducible).
    extra_nodes are (path, mode, major, minor) device nodes to add.
    """
    out = bytearray()
    ino = 0

    def entry(name: str, mode: int, data: bytes = b"", rmaj=0, rmin=0):
        nonlocal ino
        ino += 1
        nlink = 2 if stat.S_ISDIR(mode) else 1
        fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmaj, rmin,
                  len(name) + 1, 0)
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields))
        out.extend(name.encode() + b"\0")
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    for path in _walk(tree):
        name = path.relative_to(tree).as_posix()
        info = path.lstat()
        perm = stat.S_IMODE(info.st_mode)
        if stat.S_ISLNK(info.st_mode):
            entry(name, stat.S_IFLNK | 0o777, os.readlink(path).encode())
        elif stat.S_ISDIR(info.st_mode):
            entry(name, stat.S_IFDIR | perm)
        else:
            entry(name, stat.S_IFREG | perm, path.read_bytes())
    for name, mode, major, minor in extra_nodes:
        entry(name, mode, rmaj=major, rmin=minor)
    entry("TRAILER!!!", 0)
    return bytes(out)


def _walk(tree: Path) -> list[Path]:
    """All paths under tree, sorted, each directory before its contents.

    A symlink to a directory is an entry of its own (os.walk lists it among
    the directories but does not descend into it).
    """
    paths = []
    for root, dirs, files in os.walk(tree):
        dirs.sort()
        base = Path(root)
        if base != tree:
            paths.append(base)
        paths.extend(base / f for f in sorted(files))
        paths.extend(base / d for d in dirs if (base / d).is_symlink())
    return paths


# ------------------------------------------------------------------ disk ---

def make_boot_partition(part: Path, files: list[Path], run: Runner) -> None:
    """FAT16 with SYSLINUX and the given files, built as a plain file.

    -h tells the boot sector how many sectors precede the partition; the
    fixed volume id keeps the result independent of the clock.
    """
    sectors = DISK_MIB * 2048 - PART_START
    with part.open("wb") as f:
        f.truncate(sectors * SECTOR)
    run(["mkfs.fat", "-F", "16", "-n", "MINSTACK", "-i", "6d737469",
         "-h", str(PART_START), str(part)])
    run(["syslinux", "--install", str(part)])
    # mcopy refuses odd geometries on image files unless told not to check.
    run(["env", "MTOOLS_SKIP_CHECK=1", "mcopy", "-o", "-i", str(part),
         *(str(f) for f in files), "::/"])


def make_disk(disk: Path, part: Path, mbr_code: Path) -> None:
    """Raw disk: SYSLINUX's MBR code, one bootable partition, the partition."""
    size = part.stat().st_size
    with disk.open("wb") as f:
        f.truncate(PART_START * SECTOR + size)
        f.write(mbr(mbr_code.read_bytes(), PART_START, size // SECTOR))
        f.seek(PART_START * SECTOR)
        with part.open("rb") as src:
            shutil.copyfileobj(src, f, 1 << 20)


def mbr(boot_code: bytes, start: int, sectors: int) -> bytes:
    """A 512-byte MBR with one active FAT16 (LBA) partition.

    Written by hand rather than by sfdisk: 16 bytes of table are easier to
    check than a tool's stdin, and the unit tests can read them back.
    """
    if len(boot_code) > 440:
        raise ValueError("MBR boot code longer than 440 bytes")
    entry = struct.pack("<B3sB3sII", 0x80, _chs(start), 0x0E,
                        _chs(start + sectors - 1), start, sectors)
    return (boot_code.ljust(440, b"\0") + struct.pack("<I", 0x6D737469)
            + b"\0\0" + entry + b"\0" * 48 + b"\x55\xaa")


def _chs(lba: int) -> bytes:
    """CHS address for 255 heads x 63 sectors; BIOSes still read it."""
    cyl, rest = divmod(lba, 255 * 63)
    if cyl > 1023:
        return bytes((254, 0xFF, 0xFF))
    head, sector = divmod(rest, 63)
    return bytes((head, (sector + 1) | ((cyl >> 2) & 0xC0), cyl & 0xFF))


def _find_mbr() -> str | None:
    return next((p for p in MBR_CANDIDATES if os.path.exists(p)), None)


# ----------------------------------------------------------------- cache ---

def _write_manifest(target: Path, key: str, packages: dict[str, str],
                    files: dict[str, bytes]) -> None:
    """What the image was built from, for people and bug reports."""
    manifest = {
        "name": IMAGE_NAME,
        "key": key,
        "format": BUILD_FORMAT,
        "packages": packages,
        "files": {n: hashlib.sha256(c).hexdigest() for n, c in files.items()},
        "properties": image_properties(),
    }
    target.with_suffix(".json").write_text(json.dumps(manifest, indent=2)
                                           + "\n")


def _prune_old_images(cache_dir: Path, keep: Path) -> None:
    """Drop images (and manifests) of earlier inputs: each is ~25 MB."""
    for old in cache_dir.glob(f"{IMAGE_NAME}-*"):
        if old.suffix in (".qcow2", ".json", ".partial") and \
                old.stem != keep.stem:
            old.unlink()
