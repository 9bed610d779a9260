#!/usr/bin/env bash
# The machine's "power": boots TREE with systemd-nspawn and boots it again whenever it reboots
# (`systemctl reboot` inside makes nspawn exit 133).  Any other exit ends the loop.  Each boot
# gets a new veth, whose host side (ve-NAME) has no address: it is given HOST_CIDR again.
# Started detached by machine.sh (setsid, stdin /dev/null); appends to STATE/boots:
#   <epoch> boot N / <epoch> exit RC
# Usage: boot-loop.sh TREE NAME STATE HOST_CIDR
set -uo pipefail
tree=$1 name=$2 state=$3 host_cidr=$4
veth=ve-$name
n=0
while :; do
    n=$((n + 1))
    echo "$(date +%s.%N) boot $n" >>"$state/boots"
    systemd-nspawn --quiet -D "$tree" --machine="$name" --boot --register=no --keep-unit \
        --private-network --network-veth --bind=/dev/kvm --bind=/dev/net/tun \
        --capability=all --system-call-filter='@known' &
    pid=$!
    echo "$pid" >"$state/nspawn.pid"
    for _ in $(seq 300); do
        [ -e "/sys/class/net/$veth" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -e "/sys/class/net/$veth" ]; then
        ip addr replace "$host_cidr" dev "$veth" && ip link set "$veth" up
    fi
    wait "$pid"
    rc=$?
    echo "$(date +%s.%N) exit $rc" >>"$state/boots"
    [ "$rc" -eq 133 ] || exit "$rc"
done
