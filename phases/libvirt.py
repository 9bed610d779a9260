"""libvirt for nova-compute: virtlogd, virtlockd and libvirtd, and the choice between kvm and qemu.

Debian 12's libvirt ships systemd units only.  Where PID 1 is systemd those
units run it; everywhere else minstack runs the three daemons itself, in the
foreground under its supervisor (no ``-d``; libvirtd without ``--timeout``,
which would make it exit when idle).  libvirtd logs errors about D-Bus, udev
and dmidecode on such hosts: harmless, it serves the qemu driver all the same.

Without systemd there is no udev either, and two things udev or Debian's units
would do are done here: libvirtd gets a config whose socket group (libvirt)
decides access instead of polkit (no D-Bus), and /dev/kvm is made root:kvm
0660 as udev's rule makes it (see share_kvm_device for what goes wrong without).

The domain type Nova uses (kvm or qemu) is decided here, by booting a guest
(minstack/virt.py), and recorded for the nova phase.
"""
from __future__ import annotations

import grp
import socket
from pathlib import Path

from minstack import virt
from minstack.phase import Phase, Step
from minstack.supervisor import Daemon, systemd_is_init

RUN_DIR = Path("/run/libvirt")
URI = "qemu:///system"
VIRSH = "/usr/bin/virsh"
# The NAT network Debian's libvirt-daemon-config-network autostarts (virbr0, 192.168.122.0/24,
# dnsmasq): Nova does not use it, and minstack makes no host network it does not need.
DEFAULT_NETWORK_AUTOSTART = Path("/etc/libvirt/qemu/networks/autostart/default.xml")
SYSTEMD_UNITS = ("virtlogd.socket", "virtlockd.socket", "libvirtd.service")
# Ours, passed with --config: Debian's /etc/libvirt/libvirtd.conf (a dpkg conffile) stays as shipped.
LIBVIRTD_CONF = Path("/etc/libvirt/libvirtd-minstack.conf")


def unix_socket_answers(path: Path) -> bool:
    """A daemon listening on a unix socket accepts a connection."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(str(path))
            return True
        except OSError:
            return False


def stack_groups() -> list[str]:
    """libvirt: the group of libvirtd's read-write socket (what nova-compute connects to);
    kvm: /dev/kvm's group, where the host has one."""
    return [g for g in ("libvirt", "kvm") if group_exists(g)]


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def kvm_device_shared() -> bool:
    """/dev/kvm is absent, or read-write for group kvm (as Debian's udev rules make it)."""
    if not virt.KVM_DEVICE.exists():
        return True
    st = virt.KVM_DEVICE.stat()
    return group_exists("kvm") and st.st_gid == grp.getgrnam("kvm").gr_gid and st.st_mode & 0o060 == 0o060


def member_of(user: str, group: str) -> bool:
    try:
        return user in grp.getgrnam(group).gr_mem
    except KeyError:
        return False


class Libvirt(Phase):
    def daemons(self, ctx):
        if systemd_is_init():
            return []  # Debian's own units run them (see steps)
        s = ctx.settings
        virsh_works = lambda: ctx.sh.ok([VIRSH, "-c", URI, "version"])  # noqa: E731
        return [
            Daemon("virtlogd", ["/usr/sbin/virtlogd"], service="n-cpu", unit_alias=False,
                   ready=lambda: unix_socket_answers(RUN_DIR / "virtlogd-sock")),
            Daemon("virtlockd", ["/usr/sbin/virtlockd"], service="n-cpu", unit_alias=False,
                   ready=lambda: unix_socket_answers(RUN_DIR / "virtlockd-sock")),
            # ready when its qemu driver answers, not merely when the socket exists
            Daemon("libvirtd", ["/usr/sbin/libvirtd", "--config", str(LIBVIRTD_CONF)], service="n-cpu", unit_alias=False,
                   ready=virsh_works, ready_timeout=s.service_timeout),
        ]

    def steps(self, ctx):
        s = ctx.settings

        def add_groups():
            for group in stack_groups():
                if not member_of(s.stack_user, group):
                    ctx.sh.run(["usermod", "--append", "--groups", group, s.stack_user])

        def share_kvm_device():
            # Without udev the node stays root-only 0600.  libvirt then judges KVM unusable for the
            # user it runs QEMU as while its cached capabilities say KVM, and probes QEMU again on
            # every API call: `virsh version` took 4 s instead of 0.03 s (measured).
            ctx.sh.run(["chgrp", "kvm", virt.KVM_DEVICE])
            ctx.sh.run(["chmod", "0660", virt.KVM_DEVICE])

        def no_default_network():
            ctx.log.info("libvirt's default NAT network will not autostart (Nova does not use it)")
            DEFAULT_NETWORK_AUTOSTART.unlink()

        steps = [
            Step("virt type", lambda: virt.detect(s, ctx.log, run=lambda argv: ctx.sh.output(argv)),
                 f"LIBVIRT_TYPE={s.libvirt_type}: kvm only if a test guest really boots under KVM, else qemu",
                 check=lambda: virt.known(s) is not None),
            Step("groups", add_groups, f"{s.stack_user} in the groups libvirt and kvm",
                 check=lambda: all(member_of(s.stack_user, g) for g in stack_groups())),
            Step("kvm device", share_kvm_device, f"{virt.KVM_DEVICE} root:kvm 0660, as udev makes it",
                 check=kvm_device_shared),
            Step("default network", no_default_network, "libvirt's NAT network 'default' is not autostarted",
                 check=lambda: not DEFAULT_NETWORK_AUTOSTART.is_symlink() and not DEFAULT_NETWORK_AUTOSTART.exists()),
        ]
        if systemd_is_init():
            steps.append(Step("start", lambda: ctx.sh.run(["systemctl", "enable", "--now", *SYSTEMD_UNITS]),
                              f"systemctl enable --now {' '.join(SYSTEMD_UNITS)}",
                              check=lambda: ctx.sh.ok([VIRSH, "-c", URI, "version"])))
        else:
            steps.append(ctx.files_step(
                "config", f"{LIBVIRTD_CONF}: group libvirt may use the read-write socket (no polkit)",
                lambda: [ctx.template("libvirt/libvirtd.conf.j2", LIBVIRTD_CONF, restarts=("libvirtd",))]))
            steps += [ctx.start_step(daemon, f"{daemon.name} in the foreground, supervised by minstack")
                      for daemon in self.daemons(ctx)]
        connect = [VIRSH, "-c", URI, "version"]
        steps.append(Step("stack can connect", lambda: ctx.sh.run(connect, user=s.stack_user),
                          f"{s.stack_user} reaches {URI} through the libvirt group",
                          check=lambda: ctx.sh.ok(connect, user=s.stack_user)))
        return steps

    def clean(self, ctx):
        if LIBVIRTD_CONF.exists():
            LIBVIRTD_CONF.unlink()
            ctx.log.info("removed %s", LIBVIRTD_CONF)
        # Nova's guests were powered off before libvirtd stopped; with libvirtd down their
        # definitions are plain files: remove Nova's (instance-*), nobody else's.
        for leftover in sorted(Path("/etc/libvirt/qemu").glob("instance-*.xml")) + \
                sorted(Path("/etc/libvirt/qemu/autostart").glob("instance-*.xml")):
            leftover.unlink()
            ctx.log.info("removed %s", leftover)

    def summary(self, settings):
        decision = virt.known(settings)
        return [("libvirt", f"{decision.virt_type}: {decision.reason}")] if decision else []


# n-cpu is the only service that needs libvirt; the probe's test image needs files/debs/testimage.
# ./unstack.py stops libvirt too, after Nova's phase has powered its guests off.
PHASE = Libvirt(name="libvirt", requires=("packages", "prereqs"), services=("n-cpu",),
                debs=("libvirt", "testimage"))
