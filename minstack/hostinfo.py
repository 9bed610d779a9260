"""Facts about the host's IPv4 networking, for defaults and overlap checks, and its disk space.

HostFacts.probe() only reads (``ip -j -4 route show`` / ``ip -j -4 addr show``, statvfs);
HostFacts.from_ip_json() builds the same facts from that JSON text, which is
how the unit tests feed a fake host (whose disk space is unknown unless a test says it).
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, ip_address
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from minstack.catalogue import EXTERNAL_BRIDGE, INTEGRATION_BRIDGE
from minstack.errors import MinstackError

DEFAULT_ROUTE = IPv4Network("0.0.0.0/0")

# Devices minstack creates itself.  Overlap checks ignore their routes and
# addresses, so a re-run does not refuse the FLOATING_RANGE route minstack
# put on br-ex.
MINSTACK_DEVICE_PREFIXES = (EXTERNAL_BRIDGE, INTEGRATION_BRIDGE, "ovs-", "ovn", "tap", "genev_sys", "mst-")


def minstack_owned_device(name: str) -> bool:
    return name.startswith(MINSTACK_DEVICE_PREFIXES)


@dataclass(frozen=True)
class Route:
    network: IPv4Network
    dev: str  # "" for routes without a device (blackhole, unreachable)


@dataclass(frozen=True)
class HostFacts:
    default_dev: str | None
    default_ip: str | None
    routes: tuple[Route, ...]
    addresses: tuple[tuple[IPv4Interface, str], ...]  # (address/prefix, device)
    hostname: str
    # Remote addresses the host cannot lose (its DNS servers, package mirrors, PyPI), reached
    # through the default route: a range over one of them cuts the host off (measured: a test
    # network on the registries' 203.0.113.0/24 cut this kind of host off for 11 minutes).
    depends_on: tuple[tuple[IPv4Address, str], ...] = ()
    # Disk space: bytes free on the filesystem that holds (or will hold) a path, and bytes a file
    # already has allocated (a sparse file: what it really uses).  None: unknown, nothing is checked.
    free_space: Callable[[Path], int | None] = lambda path: None
    allocated: Callable[[Path], int] = lambda path: 0

    @classmethod
    def probe(cls, disk: bool = False) -> "HostFacts":
        """Read the running host's routes and addresses (changes nothing); with disk, its free space
        too (./stack.py checks what it is about to fill; ./unstack.py --clean must work on a full disk)."""
        facts = cls.from_ip_json(_ip_json("route"), _ip_json("addr"), socket.gethostname())
        if not disk:
            return cls(facts.default_dev, facts.default_ip, facts.routes, facts.addresses, facts.hostname,
                       remote_dependencies())
        return cls(facts.default_dev, facts.default_ip, facts.routes, facts.addresses, facts.hostname,
                   remote_dependencies(), free_space, allocated)

    @classmethod
    def from_ip_json(cls, route_json: str, addr_json: str, hostname: str = "localhost") -> "HostFacts":
        """Facts from the output of ``ip -j -4 route show`` and ``ip -j -4 addr show``."""
        route_entries = _load_json(route_json, "route")
        addresses = parse_addresses(addr_json)
        default_dev = _default_route_dev(route_entries)
        default_ip = None
        for interface, dev in addresses:
            if dev == default_dev:
                default_ip = str(interface.ip)
                break
        return cls(default_dev, default_ip, parse_routes(route_json), addresses, hostname)

    def networks_in_use(self) -> list[tuple[IPv4Network, str, str]]:
        """(network, device, "route" or "address") the host uses, without the
        default route and without minstack's own devices; each network once."""
        seen: set[IPv4Network] = set()
        used = []
        candidates = [(r.network, r.dev, "route") for r in self.routes]
        candidates += [(iface.network, dev, "address") for iface, dev in self.addresses]
        for network, dev, kind in candidates:
            if network == DEFAULT_ROUTE or minstack_owned_device(dev) or network in seen:
                continue
            seen.add(network)
            used.append((network, dev, kind))
        for address, what in self.depends_on:
            used.append((IPv4Network(address), what, "dependency"))
        return used

    def local_ips(self) -> set[str]:
        return {str(interface.ip) for interface, _ in self.addresses}


def free_space(path: Path) -> int | None:
    """Bytes an unprivileged user may still write on the filesystem of path, or of its nearest
    existing parent when path is not made yet (statvfs: changes nothing)."""
    for candidate in (path, *path.parents):
        try:
            st = os.statvfs(candidate)
        except FileNotFoundError:
            continue
        except OSError:
            return None
        return st.f_bavail * st.f_frsize
    return None


def allocated(path: Path) -> int:
    """Bytes path has allocated on disk (0 when it does not exist)."""
    try:
        return path.stat().st_blocks * 512
    except OSError:
        return 0


def parse_routes(text: str) -> tuple[Route, ...]:
    """Routes from ``ip -j -4 route show`` output ("default" is 0.0.0.0/0)."""
    routes = []
    for entry in _load_json(text, "route"):
        network = _route_network(entry.get("dst", ""))
        if network is not None:
            routes.append(Route(network, _route_dev(entry)))
    return tuple(routes)


def parse_addresses(text: str) -> tuple[tuple[IPv4Interface, str], ...]:
    """(address/prefix, device) pairs from ``ip -j -4 addr show`` output, in order."""
    addresses = []
    for link in _load_json(text, "addr"):
        dev = link.get("ifname", "")
        for info in link.get("addr_info", []):
            if info.get("family", "inet") != "inet" or "local" not in info:
                continue
            try:
                addresses.append((IPv4Interface(f"{info['local']}/{info.get('prefixlen', 32)}"), dev))
            except ValueError:
                continue
    return tuple(addresses)


def _route_network(dst: str) -> IPv4Network | None:
    if dst == "default":
        return DEFAULT_ROUTE
    try:
        return IPv4Network(dst, strict=False)  # "10.0.0.1" is a /32 host route
    except ValueError:
        return None


def _route_dev(entry: dict) -> str:
    if entry.get("dev"):
        return entry["dev"]
    for hop in entry.get("nexthops", []):  # multipath routes
        if hop.get("dev"):
            return hop["dev"]
    return ""


def _default_route_dev(entries: list) -> str | None:
    """Device of the default route with the lowest metric."""
    defaults = [e for e in entries if e.get("dst") in ("default", "0.0.0.0/0") and _route_dev(e)]
    if not defaults:
        return None
    return _route_dev(min(defaults, key=lambda e: e.get("metric", 0)))


def _load_json(text: str, what: str) -> list:
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise MinstackError(f"cannot understand the output of `ip -j -4 {what} show`: {error}")
    if not isinstance(data, list):
        raise MinstackError(f"cannot understand the output of `ip -j -4 {what} show`: not a list")
    return [entry for entry in data if isinstance(entry, dict)]


def _ip_json(what: str) -> str:
    command = ["ip", "-j", "-4", what, "show"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=30)
    except FileNotFoundError:
        raise MinstackError("the `ip` command (iproute2) is needed to read the host's network setup")
    except subprocess.CalledProcessError as error:
        raise MinstackError(f"`{' '.join(command)}` failed: {error.stderr.strip()}")
    except subprocess.TimeoutExpired:
        raise MinstackError(f"`{' '.join(command)}` did not answer within 30 seconds")
    return done.stdout


# ---- what the host depends on beyond its own networks ---------------------------------------
PYPI_HOSTS = ("pypi.org", "files.pythonhosted.org")


def nameservers(resolv_conf: str) -> list[IPv4Address]:
    found = []
    for line in resolv_conf.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                address = ip_address(parts[1])
            except ValueError:
                continue
            if isinstance(address, IPv4Address) and not address.is_loopback:
                found.append(address)
    return found


def apt_hosts(texts: list[str]) -> list[str]:
    """Host names in apt sources: one-line ``deb http://host/...`` and deb822 ``URIs:``."""
    hosts = []
    for text in texts:
        for url in re.findall(r"(?m)^[ \t]*(?:deb(?:-src)?[ \t]+(?:\[[^\]]*\][ \t]+)?|URIs:[ \t]*)(\S+(?:[ \t]+\S+)*)", text):
            for word in url.split():
                host = urlparse(word).hostname
                if host and urlparse(word).scheme in ("http", "https") and host not in hosts:
                    hosts.append(host)
    return hosts


def _resolve(name: str) -> list[IPv4Address]:
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({IPv4Address(info[4][0]) for info in infos})


def remote_dependencies(timeout: float = 5.0) -> tuple[tuple[IPv4Address, str], ...]:
    """The DNS servers, package mirrors and PyPI addresses this host uses (read-only lookups)."""
    found: list[tuple[IPv4Address, str]] = []
    try:
        found += [(ns, "a DNS server in /etc/resolv.conf") for ns in nameservers(Path("/etc/resolv.conf").read_text())]
    except OSError:
        pass
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list")),
               *sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))]
    texts = [p.read_text(errors="replace") for p in sources if p.is_file()]
    names = [(h, "a package mirror in the apt sources") for h in apt_hosts(texts)]
    names += [(h, "the Python package index") for h in PYPI_HOSTS]
    pool = ThreadPoolExecutor(max_workers=8)
    futures = {pool.submit(_resolve, name): (name, why) for name, why in names}
    done, _ = wait(futures, timeout=timeout)  # DNS that does not answer must not stall validation
    pool.shutdown(wait=False, cancel_futures=True)
    for future in done:
        name, why = futures[future]
        found += [(address, f"{name}, {why}") for address in future.result()]
    return tuple(sorted(set(found)))
