"""The host side of the public network: PUBLIC_NETWORK_GATEWAY on minstack's own br-ex,
forwarding, and outbound NAT for the floating range.

minstack never moves the host's interface into a bridge and never changes its
addresses, routes or DNS: br-ex is a bridge of its own (phases/ovn.py makes
it), the gateway address goes on it, and the kernel's connected route for
FLOATING_RANGE follows.  The NAT rules live in one nftables table, ``ip
minstack``, so ./unstack.py --clean removes exactly them.
"""
from __future__ import annotations

import json
from pathlib import Path

from minstack.catalogue import EXTERNAL_BRIDGE
from minstack import templates
from minstack.phase import Phase, Step
from minstack.supervisor import systemd_is_init

BRIDGE = EXTERNAL_BRIDGE
NFT_FILE = Path("/etc/minstack/minstack.nft")
FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
# where systemd runs: the gateway address, forwarding and NAT again at every boot
BOOT_UNIT = Path("/etc/systemd/system/minstack-hostnet.service")


def gateway_cidr(settings) -> str:
    return f"{settings.public_network_gateway}/{settings.floating_range.prefixlen}"


def bridge_addresses(ctx) -> list[str]:
    out = ctx.sh.output(["ip", "-j", "-4", "addr", "show", "dev", BRIDGE], check=False)
    links = json.loads(out or "[]")
    return [f"{a['local']}/{a['prefixlen']}" for link in links for a in link.get("addr_info", [])]


def bridge_up(ctx) -> bool:
    out = ctx.sh.output(["ip", "-j", "link", "show", "dev", BRIDGE], check=False)
    links = json.loads(out or "[]")
    return bool(links) and "UP" in links[0].get("flags", [])


class HostNet(Phase):
    def steps(self, ctx):
        s = ctx.settings
        cidr = gateway_cidr(s)
        forward_saved = s.state_dir / "ip_forward.before"

        def addresses_differ():
            """The bridge's addresses (a list, so an empty one still says 'act') when not just the gateway."""
            found = bridge_addresses(ctx)
            return None if found == [cidr] else [found]

        def add_gateway(seen):
            [found] = seen
            for other in found:  # a gateway from an earlier FLOATING_RANGE
                if other != cidr:
                    ctx.sh.run(["ip", "addr", "del", other, "dev", BRIDGE])
            if cidr not in found:
                ctx.sh.run(["ip", "addr", "add", cidr, "dev", BRIDGE])

        def enable_forwarding():
            if not forward_saved.exists():  # remember the host's own value, for --clean
                ctx.write_file(forward_saved, FORWARD.read_text(), mode=0o600)
            FORWARD.write_text("1\n")

        def nat_differs() -> str | None:
            """The ruleset wanted, when the file or the loaded table is not it."""
            text = templates.render("hostnet/minstack.nft.j2", s, bridge=BRIDGE)
            loaded = ctx.sh.run(["nft", "list", "table", "ip", "minstack"], check=False, quiet=True)
            same = loaded.ok and str(s.floating_range) in loaded.stdout and NFT_FILE.exists() and \
                NFT_FILE.read_text() == text
            return None if same else text

        def nat(text: str):
            ctx.write_file(NFT_FILE, text, mode=0o644)
            ctx.sh.run(["nft", "-f", NFT_FILE])

        def boot_unit_differs() -> str | None:
            text = templates.render("hostnet/minstack-hostnet.service.j2", s, bridge=BRIDGE, cidr=cidr,
                                    nft_file=NFT_FILE)
            enabled = ctx.sh.ok(["systemctl", "is-enabled", "--quiet", BOOT_UNIT.name])
            return None if enabled and BOOT_UNIT.exists() and BOOT_UNIT.read_text() == text else text

        def boot_unit(text: str):
            ctx.write_file(BOOT_UNIT, text, mode=0o644)
            ctx.sh.run(["systemctl", "daemon-reload"])
            ctx.sh.run(["systemctl", "enable", BOOT_UNIT.name])

        boot = [Step("boot unit", boot_unit, f"{BOOT_UNIT.name}: the three above again at every boot",
                     observe=boot_unit_differs)] if systemd_is_init() else []
        return [
            Step("gateway address", add_gateway, f"{cidr} on {BRIDGE} (minstack's own bridge)",
                 observe=addresses_differ),
            Step("bridge up", lambda: ctx.sh.run(["ip", "link", "set", BRIDGE, "up"]), f"{BRIDGE} up",
                 check=lambda: bridge_up(ctx)),
            Step("forwarding", enable_forwarding, "net.ipv4.ip_forward=1 (instances reach out through the host)",
                 check=lambda: FORWARD.read_text().strip() == "1"),
            Step("nat", nat, f"nftables table 'ip minstack': masquerade {s.floating_range} leaving the host",
                 observe=nat_differs),
            *boot,
        ]

    def clean(self, ctx):
        if BOOT_UNIT.exists():
            # --now: a oneshot that ran stays "active (exited)", unit file or not
            ctx.sh.run(["systemctl", "disable", "--now", BOOT_UNIT.name], check=False)
            BOOT_UNIT.unlink()
            ctx.sh.run(["systemctl", "daemon-reload"], check=False)
            ctx.log.info("removed %s", BOOT_UNIT)
        if ctx.sh.ok(["nft", "list", "table", "ip", "minstack"]):
            ctx.sh.run(["nft", "delete", "table", "ip", "minstack"])
        if NFT_FILE.exists():
            NFT_FILE.unlink()
        if NFT_FILE.parent.is_dir() and not any(NFT_FILE.parent.iterdir()):
            NFT_FILE.parent.rmdir()  # /etc/minstack holds nothing else minstack made
        saved = ctx.settings.state_dir / "ip_forward.before"
        if saved.exists():
            FORWARD.write_text(saved.read_text())
            ctx.log.info("restored net.ipv4.ip_forward to %s", saved.read_text().strip())
        if Path("/sys/class/net", BRIDGE).exists():
            for address in bridge_addresses(ctx):
                ctx.sh.run(["ip", "addr", "del", address, "dev", BRIDGE], check=False)


PHASE = HostNet(name="hostnet", requires=("ovn",), services=("q-svc",), debs=("hostnet",))
