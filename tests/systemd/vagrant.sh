#!/usr/bin/env bash
# What `vagrant up` does for minstack's Vagrantfile, done by tests/run-systemd instead of Vagrant
# (no box can be downloaded on the test hosts).  This file is the whole difference between the
# harness and a real `vagrant up`; everything after it (provision.sh, ./stack.py) is the real thing.
#
#   vagrant.sh box TREE PUBKEY ADDR/PREFIX GATEWAY   make TREE (a copy of the Debian 12 rootfs) what a
#                                            debian/bookworm64 box is: user vagrant, passwordless sudo,
#                                            SSH with the harness's key, ifupdown network on host0
#   vagrant.sh rsync REPO KEY ADDR           config.vm.synced_folder ..., type: "rsync" (Vagrant's own
#                                            rsync command line, the Vagrantfile's exclude list)
#   vagrant.sh provision REPO KEY ADDR       config.vm.provision "minstack", type: "shell",
#                                            privileged: false (upload, then run over SSH in a login shell)
#
# Not done here, and why: the box download and its VM (a systemd-nspawn container instead, see
# tests/systemd/boot-loop.sh), forwarded ports (checks run inside the machine or at its address),
# the provider settings (cpus, memory, nested KVM: the container shares the host's).
# One thing is this test host's, not Vagrant's: its egress goes through a proxy whose CA and DNS
# resolver the box must trust/use (the "host egress" lines below); a laptop needs neither.
set -euo pipefail
GUEST_REPO=/home/vagrant/minstack
ssh_opts() { echo "-i $1 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=10"; }

case "${1:-}" in
box)
    tree=$2 pubkey=$3 addr=$4 gateway=$5
    # the box's vagrant user: password "vagrant", passwordless sudo, the (here: harness's) key
    chroot "$tree" useradd --create-home --shell /bin/bash --user-group vagrant
    echo vagrant:vagrant | chroot "$tree" chpasswd
    echo 'vagrant ALL=(ALL) NOPASSWD: ALL' >"$tree/etc/sudoers.d/vagrant"
    chmod 0440 "$tree/etc/sudoers.d/vagrant"
    install -d -m 0700 -o "$(chroot "$tree" id -u vagrant)" -g "$(chroot "$tree" id -g vagrant)" "$tree/home/vagrant/.ssh"
    install -m 0600 -o "$(chroot "$tree" id -u vagrant)" -g "$(chroot "$tree" id -g vagrant)" "$pubkey" \
        "$tree/home/vagrant/.ssh/authorized_keys"
    echo bookworm >"$tree/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tbookworm\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$tree/etc/hosts"
    # the box's network: ifupdown, here with a static address on the container's veth (host0)
    # instead of DHCP from the provider
    cat >"$tree/etc/network/interfaces" <<NET
auto lo
iface lo inet loopback

auto host0
iface host0 inet static
    address $addr
    gateway $gateway
NET
    chroot "$tree" systemctl enable ssh networking >/dev/null 2>&1
    : >"$tree/etc/machine-id"   # a new machine id at first boot, as a box gets
    # the container's, not Vagrant's: nspawn mounts the host's cgroup v1 controllers read-only, and
    # libvirt's qemu driver fails to start any guest ("Failed to create v1 controller cpu for group:
    # Read-only file system"); a VM has its own cgroups.  libvirt is told to use none, in a qemu.conf
    # that is there before its package (dpkg keeps an existing conffile with these options).
    mkdir -p "$tree/etc/libvirt"
    echo 'cgroup_controllers = [ ]   # tests/systemd/vagrant.sh: the container has read-only cgroups' \
        >"$tree/etc/libvirt/qemu.conf"
    printf 'force-confdef\nforce-confold\n' >"$tree/etc/dpkg/dpkg.cfg.d/tests-systemd-keep-conffiles"
    # host egress (this test host's, not Vagrant's): its resolver and its proxy's CA
    rm -f "$tree/etc/resolv.conf"; cp /etc/resolv.conf "$tree/etc/resolv.conf"
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$tree/usr/local/share/ca-certificates/"
        chroot "$tree" update-ca-certificates >/dev/null 2>&1
        # uv verifies against its own roots unless told; sudo -E and login shells pass this on
        echo "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" >>"$tree/etc/environment"
    fi
    ;;
rsync)
    repo=$2 key=$3 addr=$4
    # The Vagrantfile's rsync__exclude list, read from it, plus the .vagrant/ Vagrant always adds.
    mapfile -t excludes < <(python3 - "$repo/Vagrantfile" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
block = re.search(r"rsync__exclude:\s*\[(.*?)\]", text, re.S).group(1)
print("\n".join(re.findall(r'"([^"]*)"', block)))
PY
)
    args=(--verbose --archive --delete -z --copy-links --no-owner --no-group --exclude .vagrant/)
    for e in "${excludes[@]}"; do args+=(--exclude "$e"); done
    ssh $(ssh_opts "$key") vagrant@"$addr" "sudo mkdir -p $GUEST_REPO && sudo chown vagrant:vagrant $GUEST_REPO"
    rsync "${args[@]}" --rsync-path "sudo rsync" -e "ssh $(ssh_opts "$key")" "$repo/" vagrant@"$addr":"$GUEST_REPO" >/dev/null
    # Vagrant then gives the tree to the SSH user
    ssh $(ssh_opts "$key") vagrant@"$addr" \
        "sudo find $GUEST_REPO '!' -type l -a '(' ! -user vagrant -or ! -group vagrant ')' -exec chown vagrant:vagrant '{}' +"
    ;;
provision)
    repo=$2 key=$3 addr=$4
    # The shell provisioner: upload to /tmp/vagrant-shell, then run it as the SSH user in `bash -l`,
    # with the Vagrantfile's env: (the defaults of MINSTACK_HORIZON_PORT and MINSTACK_NOVNC_PORT).
    scp -q $(ssh_opts "$key") "$repo/files/vagrant/provision.sh" vagrant@"$addr":/tmp/vagrant-shell
    ssh $(ssh_opts "$key") vagrant@"$addr" bash -l -c "'chmod +x /tmp/vagrant-shell && \
export MINSTACK_HORIZON_PORT=8080 MINSTACK_NOVNC_PORT=6080 && /tmp/vagrant-shell $GUEST_REPO'"
    ;;
*)
    sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
