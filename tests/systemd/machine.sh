#!/usr/bin/env bash
# The systemd machine of tests/run-systemd: a Debian 12 system container booted with
# systemd-nspawn (systemd as PID 1, its own network namespace), provisioned like a Vagrant box.
#
#   machine.sh up       build (or reuse) the rootfs, copy it to a fresh tree, make it a box
#                       (vagrant.sh box), give it a network, boot it, wait for SSH
#   machine.sh down     power it off, remove its network (host address, nft table, forwarding
#                       as it was) and its tree; the cached rootfs stays
#   machine.sh exec CMD...   run CMD as root inside, as a transient unit (its output, its exit code)
#   machine.sh ssh CMD...    run CMD over SSH as vagrant (what `vagrant ssh -c` does)
#   machine.sh pid           the machine's PID 1, as the host sees it
#   machine.sh reboot        systemctl reboot inside (boot-loop.sh boots it again)
#
# Settings (environment): MINSTACK_SD_NAME (mssd), MINSTACK_SD_NET (10.244.0.0/30: host side .1,
# machine .2; refused when it overlaps a route of this host), MINSTACK_SD_CACHE
# (/var/cache/minstack-systemd: the rootfs), MINSTACK_SD_STATE (/var/lib/minstack-systemd).
# Why a container and not a qemu VM: these hosts' /dev/kvm cannot run a guest (kvm-pvm), and a
# TCG-emulated VM running a cloud that itself emulates its instances would take hours; the
# container runs a real systemd as PID 1 with its own network stack, and reboots.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
name=${MINSTACK_SD_NAME:-mssd}
net=${MINSTACK_SD_NET:-10.244.0.0/30}
cache=${MINSTACK_SD_CACHE:-/var/cache/minstack-systemd}
state=${MINSTACK_SD_STATE:-/var/lib/minstack-systemd}/$name
veth=ve-$name
table=minstack_systemd
read -r host_ip guest_ip prefix < <(python3 -c "
import ipaddress, sys
n = ipaddress.ip_network(sys.argv[1]); h = list(n.hosts())
print(h[0], h[1], n.prefixlen)" "$net")
key=$state/id_ed25519
ssh_opts=(-i "$key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5)

nspawn_pid() { cat "$state/nspawn.pid" 2>/dev/null; }
leader() {   # the container's init: nspawn's child
    local p; p=$(nspawn_pid) || return 1
    [ -n "$p" ] && pgrep -P "$p" | head -1
}
log() { echo "machine.sh: $*" >&2; }

overlaps() {   # any route of this host (outside this machine's own veth) overlapping $net
    ip -j route show table all | python3 -c "
import ipaddress, json, sys
net = ipaddress.ip_network(sys.argv[1]); veth = sys.argv[2]
for r in json.load(sys.stdin):
    dst = r.get('dst', '')
    if dst in ('default', '') or r.get('dev') == veth or ':' in dst:
        continue
    try:
        other = ipaddress.ip_network(dst if '/' in dst else dst + '/32', strict=False)
    except ValueError:
        continue
    if other.overlaps(net):
        print(dst, r.get('dev')); break" "$net" "$veth"
}

case "${1:-}" in
up)
    if [ -n "$(leader 2>/dev/null || true)" ]; then log "$name already runs (pid $(leader))"; exit 1; fi
    clash=$(overlaps)
    [ -z "$clash" ] || { log "$net overlaps this host's route $clash: set MINSTACK_SD_NET"; exit 1; }
    rootfs=$("$here/rootfs.sh" "$cache" | tail -1)
    rm -rf "$state"; mkdir -p "$state"
    start=$(date +%s.%N)
    cp -a --reflink=auto "$rootfs" "$state/tree"
    ssh-keygen -q -t ed25519 -N '' -C "minstack-systemd" -f "$key"
    "$here/vagrant.sh" box "$state/tree" "$key.pub" "$guest_ip/$prefix" "$host_ip"
    # forwarding and outbound NAT for the machine, in a table of its own
    cat /proc/sys/net/ipv4/ip_forward >"$state/ip_forward.before"
    echo 1 >/proc/sys/net/ipv4/ip_forward
    nft -f - <<NFT
table ip $table {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr $net oifname != "$veth" masquerade
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        iifname "$veth" accept
        oifname "$veth" ct state established,related accept
    }
}
NFT
    setsid "$here/boot-loop.sh" "$state/tree" "$name" "$state" "$host_ip/$prefix" \
        </dev/null >>"$state/console.log" 2>&1 &
    echo $! >"$state/loop.pid"
    for _ in $(seq 120); do
        ssh "${ssh_opts[@]}" vagrant@"$guest_ip" true 2>/dev/null && break
        kill -0 "$(cat "$state/loop.pid")" 2>/dev/null || { log "nspawn ended:"; tail -20 "$state/console.log" >&2; exit 1; }
        sleep 0.5
    done
    ssh "${ssh_opts[@]}" vagrant@"$guest_ip" true
    log "$name up at $guest_ip (init pid $(leader)) in $(python3 -c "import time,sys; print(round(time.time()-float(sys.argv[1]),1))" "$start") s"
    ;;
down)
    if p=$(leader 2>/dev/null) && [ -n "$p" ]; then
        nsenter -t "$p" -a systemctl poweroff 2>/dev/null || true
        for _ in $(seq 120); do kill -0 "$(cat "$state/loop.pid")" 2>/dev/null || break; sleep 0.5; done
    fi
    for f in loop.pid nspawn.pid; do   # still there after a minute: ours, by pid
        if [ -f "$state/$f" ] && kill -0 "$(cat "$state/$f")" 2>/dev/null; then
            log "killing $f $(cat "$state/$f")"; kill "$(cat "$state/$f")" 2>/dev/null || true; sleep 3
        fi
    done
    ip link show "$veth" >/dev/null 2>&1 && ip link delete "$veth"
    nft list table ip "$table" >/dev/null 2>&1 && nft delete table ip "$table"
    # Forwarding is one switch for the whole host: turned off again only when it was off before the
    # machine and no one else needs it now (a stack on this host forwards for its own floating IPs:
    # its table "ip minstack"; turning it off under a running stack broke that stack's NAT).
    if [ "$(cat "$state/ip_forward.before" 2>/dev/null)" = 0 ] && ! nft list table ip minstack >/dev/null 2>&1; then
        echo 0 >/proc/sys/net/ipv4/ip_forward
    fi
    if [ "${MINSTACK_SD_KEEP_TREE:-}" != 1 ] && [ -d "$state/tree" ]; then
        rm -rf --one-file-system "$state/tree"
    fi
    log "$name down"
    ;;
exec)
    shift; p=$(leader); [ -n "$p" ] || { log "not running"; exit 1; }
    exec nsenter -t "$p" -a systemd-run --quiet --wait --pipe --collect \
        --setenv=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin -- "$@"
    ;;
ssh)
    shift; exec ssh "${ssh_opts[@]}" vagrant@"$guest_ip" "$@" ;;
pid)
    leader ;;
reboot)   # `systemctl reboot` inside: nspawn exits 133, boot-loop.sh boots it again
    p=$(leader); [ -n "$p" ] || { log "not running"; exit 1; }
    nsenter -t "$p" -a systemctl reboot ;;
ip)
    echo "$guest_ip" ;;
*)
    sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
