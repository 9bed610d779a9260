#!/bin/bash
# Manual proof of the offline test image (minstack/testimage.py): build it,
# boot it under qemu (TCG, machine pc, virtio disk + virtio-net) three times
# and check what a minstack test relies on:
#   1. metadata service: DHCP lease with option 121 static routes and MTU,
#      OpenStack meta_data.json, console marker, SSH as cirros and root with
#      the injected key, the HTTP responder, what Tempest runs as cirros
#      (sudo, curl, ping, udhcpc's pid file and a lease renewal, a NIC
#      hot-plugged and brought up with sudo), ACPI poweroff;
#   2. EC2 metadata paths only (the fallback when /openstack is missing),
#      in 128 MiB of RAM (the image's min_ram);
#   3. config drive (IDE cdrom labelled config-2) with no metadata service,
#      found and mounted the way Tempest does (blkid -L, sudo mount).
#
# The network is a private one: a network namespace of our own holding a
# bridge (mst-br0, 10.213.7.0/24), the VM's tap, busybox udhcpd as the DHCP
# server, python's http.server on 169.254.169.254 as metadata, and a second
# bridge (mst-br1, 10.213.8.0/24) for the hot-plugged NIC.  No
# traffic leaves that namespace; the host's interfaces and routes are never
# touched.  Everything made here is removed on exit.
#
# Usage: tools/try-testimage.sh [LOG_DIR]   (root; ~1-2 minutes; LOG_DIR
# keeps the console logs)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
# The interpreter itself, not a wrapper script (pyenv shims) that would
# make $! name the wrapper.
PYTHON=$(python3 -c 'import sys; print(sys.executable)')
WORK=$(mktemp -d /tmp/mst-testimage.XXXXXX)
NS=mst-ti-$$
BR=mst-br0
TAP=mst-tap0
NET=10.213.7
BR2=mst-br1
TAP2=mst-tap1
NET2=10.213.8
GUEST_MAC=52:54:00:6d:73:01
GUEST_IP=$NET.10
MTU=1400
PIDS=()

log() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
ok() { printf 'ok: %s\n' "$*"; }
in_ns() { ip netns exec "$NS" "$@"; }
# Background jobs go through bg_ns, never the in_ns function: "func &" forks
# a subshell, so $! would name the subshell and kill would orphan the job.
bg_ns() { ip netns exec "$NS" "$@" & PIDS+=($!); LAST_PID=$!; }

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    ip netns del "$NS" 2>/dev/null || true  # takes the bridge and tap along
    if [ -n "$KEEP" ]; then
        mkdir -p "$KEEP"
        cp "$WORK"/*.console "$WORK"/*.log "$KEEP"/ 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
KEEP=${1:-}  # a directory to keep the console logs in
trap cleanup EXIT

need_tools() {
    local missing=()
    command -v qemu-system-x86_64 > /dev/null || missing+=(qemu-system-x86)
    command -v genisoimage > /dev/null || missing+=(genisoimage)
    command -v ssh > /dev/null || missing+=(openssh-client)
    command -v ssh-keygen > /dev/null || missing+=(openssh-client)
    local tool
    for tool in mkfs.fat syslinux mcopy qemu-img depmod; do
        if ! command -v "$tool" > /dev/null; then  # the builder's own list
            missing+=($(sed 's/#.*//' "$REPO/files/debs/testimage"))
            break
        fi
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
            install -y -q "${missing[@]}" > "$WORK/apt.log"
    fi
}

build_image() {
    log "building the image"
    local start=$SECONDS
    IMAGE=$(cd "$REPO" && python3 -c '
import sys
from pathlib import Path
from minstack.testimage import build_test_image
print(build_test_image(Path(sys.argv[1]), Path(sys.argv[2])))
' "$WORK/cache" "$WORK/build")
    BUILD_SECONDS=$((SECONDS - start))
    ok "built $(basename "$IMAGE") in ${BUILD_SECONDS}s," \
        "$(du -k "$IMAGE" | cut -f1) KiB on disk," \
        "$(qemu-img info --output=json "$IMAGE" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"] >> 20)') MiB virtual"
}

# busybox-static's udhcpd serves DHCP on the bridge; unpacked, not installed.
fetch_busybox() {
    mkdir -p "$WORK/bb"
    (cd "$WORK/bb" && apt-get -q -o APT::Sandbox::User=root download busybox-static > /dev/null &&
        dpkg-deb -x busybox-static_*.deb root)
    BUSYBOX=$WORK/bb/root/bin/busybox
}

make_network() {
    log "private network: namespace $NS, bridge $BR $NET.0/24"
    ip netns add "$NS"
    in_ns ip link set lo up
    in_ns ip link add "$BR" type bridge
    in_ns ip tuntap add dev "$TAP" mode tap
    in_ns ip link set "$TAP" master "$BR"
    # .1 is the router; .2 plays Neutron's metadata port (reached through
    # the option 121 route); 169.254.169.254 is where metadata listens.
    in_ns ip addr add "$NET.1/24" dev "$BR"
    in_ns ip addr add "$NET.2/24" dev "$BR"
    in_ns ip addr add 169.254.169.254/32 dev "$BR"
    in_ns ip link set "$BR" mtu "$MTU" up
    in_ns ip link set "$TAP" mtu "$MTU" up
    in_ns ip link add "$BR2" type bridge
    in_ns ip tuntap add dev "$TAP2" mode tap
    in_ns ip link set "$TAP2" master "$BR2"
    in_ns ip addr add "$NET2.1/24" dev "$BR2"
    in_ns ip link set "$BR2" up
    in_ns ip link set "$TAP2" up
    cat > "$WORK/udhcpd.conf" <<EOF
interface $BR
start $NET.100
end $NET.150
static_lease $GUEST_MAC $GUEST_IP
lease_file $WORK/udhcpd.leases
pidfile $WORK/udhcpd.pid
option subnet 255.255.255.0
option router $NET.1
option mtu $MTU
option staticroutes 169.254.169.254/32 $NET.2, 0.0.0.0/0 $NET.1
option lease 3600
EOF
    touch "$WORK/udhcpd.leases"
    bg_ns "$BUSYBOX" udhcpd -f "$WORK/udhcpd.conf" > "$WORK/udhcpd.log" 2>&1
}

# $1 = name, then "path=content" pairs written under a fresh document root.
write_tree() {
    local root=$1 spec
    shift
    rm -rf "$root"
    for spec in "$@"; do
        mkdir -p "$(dirname "$root/${spec%%=*}")"
        printf '%s' "${spec#*=}" > "$root/${spec%%=*}"
    done
}

meta_data_json() {  # $1 = hostname, $2 = public key
    python3 -c 'import json, sys
print(json.dumps({"uuid": "0c6d2c1e-2f4b-4c8e-9d6e-6d7374690001",
    "hostname": sys.argv[1], "name": sys.argv[1],
    "public_keys": {"mst-key": sys.argv[2] + "\n"}}))' "$1" "$2"
}

start_metadata() {  # $1 = document root
    bg_ns "$PYTHON" -m http.server 80 --bind 169.254.169.254 --directory "$1" \
        > "$WORK/metadata.log" 2>&1
    MD_PID=$LAST_PID
}

stop_metadata() {
    kill "$MD_PID"
    wait "$MD_PID" 2>/dev/null || true
}

# $1 = scenario name, then extra qemu arguments.  Sets CONSOLE and BOOT_SECONDS.
boot() {
    local name=$1 start=$EPOCHREALTIME
    shift
    CONSOLE=$WORK/$name.console
    MONITOR=$WORK/$name.monitor
    : > "$CONSOLE"
    bg_ns qemu-system-x86_64 -accel tcg -machine pc -m "${MEM:-256}" -nographic \
        -serial "file:$CONSOLE" -monitor "unix:$MONITOR,server,nowait" \
        -drive "file=$IMAGE,if=virtio,format=qcow2,snapshot=on" \
        -netdev "tap,id=n0,ifname=$TAP,script=no,downscript=no" \
        -device "virtio-net-pci,netdev=n0,mac=$GUEST_MAC" \
        "$@" < /dev/null > "$WORK/$name.qemu.log" 2>&1
    QEMU_PID=$LAST_PID
    local deadline=$((SECONDS + 180))
    until grep -q 'minstack-testimage login:' "$CONSOLE"; do
        kill -0 "$QEMU_PID" 2>/dev/null || fail "$name: qemu died: $(cat "$WORK/$name.qemu.log")"
        [ $SECONDS -lt $deadline ] || fail "$name: no console marker in 180s"
        sleep 0.2
    done
    BOOT_SECONDS=$(awk "BEGIN { printf \"%.1f\", $EPOCHREALTIME - $start }")
    ok "$name: console marker after ${BOOT_SECONDS}s"
}

expect_console() {  # $1 = scenario, $2 = grep -E pattern
    grep -Eq -- "$2" "$CONSOLE" || fail "$1: console lacks /$2/"
    ok "$1: console: $(grep -Em1 -- "$2" "$CONSOLE" | tr -d '\r')"
}

guest_ssh() {  # $1 = key, $2 = user, rest = command
    local key=$1 user=$2
    shift 2
    in_ns ssh -i "$key" -o BatchMode=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=10 \
        "$user@$GUEST_IP" "$@"
}

expect_ssh() {  # $1 = scenario, $2 = key, $3 = user, $4 = expected hostname
    local out
    out=$(guest_ssh "$2" "$3" 'echo "$(id -un) $(hostname)"') ||
        fail "$1: ssh as $3 failed"
    [ "$out" = "$3 $4" ] || fail "$1: ssh as $3 said '$out', wanted '$3 $4'"
    ok "$1: ssh as $3 -> $out"
}

expect_http() {  # $1 = scenario, $2 = expected body
    local body
    body=$(in_ns python3 -c 'import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode().strip())' \
        "http://$GUEST_IP/")
    [ "$body" = "$2" ] || fail "$1: HTTP said '$body', wanted '$2'"
    ok "$1: http://$GUEST_IP/ -> $body"
}

monitor() {  # one qemu monitor command
    python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n"); time.sleep(0.5)' "$MONITOR" "$1"
}

expect_as_cirros() {  # $1 = scenario, $2 = key, $3 = command, $4 = expected output
    local out
    out=$(guest_ssh "$2" cirros "$3") || fail "$1: as cirros, '$3' failed: $out"
    [ "$out" = "$4" ] || fail "$1: as cirros, '$3' said '$out', wanted '$4'"
    ok "$1: as cirros: $3 -> $(head -c 80 <<< "$out" | tr '\n' ' ')"
}

# What Tempest's scenario tests run in the guest as the image's user
# (tempest/common/utils/linux/remote_client.py, test_network_basic_ops.py,
# test_server_basic_ops.py), with its shell prologue.
expect_tempest_commands() {  # $1 = scenario, $2 = key
    local pro='set -eu -o pipefail; PATH=$PATH:/sbin:/usr/sbin;' pid renewals out
    expect_as_cirros "$1" "$2" "$pro sudo id -un" root
    expect_as_cirros "$1" "$2" "$pro sudo sh -c 'echo tempest-was-here > /dev/console' && echo done" done
    expect_console "$1" "tempest-was-here"
    expect_as_cirros "$1" "$2" "$pro curl http://169.254.169.254/latest/meta-data/public-ipv4" "$GUEST_IP"
    out=$(guest_ssh "$2" cirros "$pro ping -c1 -w1 -s56 $NET.1" 2>&1) ||
        fail "$1: ping as cirros failed: $out"
    ok "$1: as cirros: ping -c1 -w1 -s56 $NET.1"
    # DHCP renewal as Tempest asks for it (test_subnet_details)
    # (udhcpc's own output goes nowhere once it is in the background: the
    # DHCP server's log shows the renewal)
    pid=$(guest_ssh "$2" cirros "$pro cat /var/run/udhcpc.eth0.pid") || fail "$1: no udhcpc pid file"
    renewals=$(grep -c "sending ACK" "$WORK/udhcpd.log")
    guest_ssh "$2" cirros "$pro sudo /bin/kill -USR1 $pid" || fail "$1: sudo kill -USR1 $pid failed"
    local deadline=$((SECONDS + 20))
    until [ "$(grep -c "sending ACK" "$WORK/udhcpd.log")" -gt "$renewals" ]; do
        [ $SECONDS -lt $deadline ] || fail "$1: udhcpc (pid $pid) did not renew on SIGUSR1"
        sleep 0.5
    done
    ok "$1: udhcpc pid $pid from /var/run/udhcpc.eth0.pid renewed its lease on SIGUSR1"
    # a NIC hot-plugged as Nova attaches an interface, brought up as Tempest does
    monitor "netdev_add tap,id=hp0,ifname=$TAP2,script=no,downscript=no"
    monitor "device_add virtio-net-pci,netdev=hp0,id=hpnic0,mac=52:54:00:6d:73:02"
    deadline=$((SECONDS + 30))
    until guest_ssh "$2" cirros "ip -o link" | grep -q "52:54:00:6d:73:02"; do
        [ $SECONDS -lt $deadline ] || fail "$1: the hot-plugged NIC did not appear"
        sleep 1
    done
    expect_as_cirros "$1" "$2" "$pro sudo ip addr add $NET2.10/24 dev eth1 && sudo ip link set eth1 up && ping -c1 -w5 $NET2.1 > /dev/null && echo reached" reached
}

# ACPI power button, as "nova stop" presses it: the guest must power off.
expect_poweroff() {  # $1 = scenario
    monitor system_powerdown
    local deadline=$((SECONDS + 60))
    while kill -0 "$QEMU_PID" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || fail "$1: no poweroff within 60s"
        sleep 0.5
    done
    ok "$1: powered off on the ACPI button"
}

stop_vm() {
    kill "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
}

scenario_metadata() {
    log "1. metadata service (OpenStack JSON), DHCP option 121 + MTU"
    write_tree "$WORK/md1" \
        "openstack/latest/meta_data.json=$(meta_data_json mst-meta-vm "$(cat "$WORK/key1.pub")")" \
        "latest/meta-data/public-ipv4=$GUEST_IP"
    start_metadata "$WORK/md1"
    boot metadata
    expect_console metadata "udhcpc: lease of $GUEST_IP obtained"
    expect_console metadata "udhcpc: route 169.254.169.254/32 via $NET.2"
    expect_console metadata "udhcpc: eth0 mtu $MTU"
    expect_console metadata "metadata: hostname=mst-meta-vm source=metadata-service keys=1"
    expect_ssh metadata "$WORK/key1" cirros mst-meta-vm
    expect_ssh metadata "$WORK/key1" root mst-meta-vm
    local routes
    routes=$(guest_ssh "$WORK/key1" cirros 'ip route; cat /sys/class/net/eth0/mtu')
    grep -q "169.254.169.254 via $NET.2" <<< "$routes" || fail "no metadata route: $routes"
    grep -qx "$MTU" <<< "$routes" || fail "MTU not applied: $routes"
    ok "metadata: guest routes + MTU: $(tr '\n' ';' <<< "$routes")"
    expect_http metadata mst-meta-vm
    grep -q 'GET /openstack/latest/meta_data.json' "$WORK/metadata.log" ||
        fail "metadata server saw no request"
    expect_tempest_commands metadata "$WORK/key1"
    expect_poweroff metadata
    stop_metadata
    METADATA_BOOT=$BOOT_SECONDS
}

scenario_ec2() {
    log "2. metadata service with EC2 paths only"
    write_tree "$WORK/md2" \
        "latest/meta-data/hostname=mst-ec2-vm" \
        "latest/meta-data/public-keys/0/openssh-key=$(cat "$WORK/key2.pub")"
    start_metadata "$WORK/md2"
    MEM=128 boot ec2
    expect_console ec2 "metadata: hostname=mst-ec2-vm source=metadata-service keys=1"
    expect_ssh ec2 "$WORK/key2" cirros mst-ec2-vm
    expect_http ec2 mst-ec2-vm
    stop_vm
    stop_metadata
}

scenario_config_drive() {
    log "3. config drive (IDE cdrom, label config-2), metadata service down"
    write_tree "$WORK/cd" \
        "openstack/latest/meta_data.json=$(meta_data_json mst-cd-vm "$(cat "$WORK/key3.pub")")"
    genisoimage -quiet -o "$WORK/config.iso" -V config-2 -r -J "$WORK/cd"
    boot configdrive -drive "file=$WORK/config.iso,if=ide,media=cdrom,readonly=on"
    expect_console configdrive "metadata: hostname=mst-cd-vm source=config-drive\(/dev/sr0\) keys=1"
    expect_ssh configdrive "$WORK/key3" cirros mst-cd-vm
    local pro='set -eu -o pipefail; PATH=$PATH:/sbin:/usr/sbin;'
    expect_as_cirros configdrive "$WORK/key3" "$pro blkid -L config-2 -o device" /dev/sr0
    expect_as_cirros configdrive "$WORK/key3" \
        "$pro sudo mount /dev/sr0 /mnt && sudo cat /mnt/openstack/latest/meta_data.json && sudo umount /mnt" \
        "$(meta_data_json mst-cd-vm "$(cat "$WORK/key3.pub")")"
    expect_http configdrive mst-cd-vm
    stop_vm
}

[ "$(id -u)" = 0 ] || fail "run as root (network namespace, tap)"
need_tools
build_image
fetch_busybox
for k in key1 key2 key3; do ssh-keygen -q -t ed25519 -N '' -C "$k" -f "$WORK/$k"; done
make_network
scenario_metadata
scenario_ec2
scenario_config_drive
log "all good: build ${BUILD_SECONDS}s, boot to marker ${METADATA_BOOT}s (metadata scenario)," \
    "image $(du -k "$IMAGE" | cut -f1) KiB"
