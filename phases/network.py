"""DevStack's initial networks: ``private`` for the demo project, ``public`` outside, ``router1`` between.

- ``private`` / ``private-subnet``: a Geneve network (neutron's default project
  network type here) over FIXED_RANGE, DHCP on: OVN answers DHCP itself.
- ``public`` / ``public-subnet``: an external flat network on physical network
  ``public``, which ovn-controller maps to minstack's own bridge (catalogue.EXTERNAL_BRIDGE)
  (phases/ovn.py; the host side is phases/hostnet.py), over FLOATING_RANGE with
  PUBLIC_NETWORK_GATEWAY as its gateway and no DHCP.
- ``router1`` (demo project): gateway on ``public`` with SNAT, an interface on
  ``private-subnet``: instances reach out, floating IPs reach in.

Everything is found before it is created, so re-runs never make a second one,
and nothing is renumbered: a range that changed is an error that says what to do.
"""
from __future__ import annotations

from dataclasses import dataclass

from minstack import identity
from minstack.catalogue import DEMO, EXTERNAL_BRIDGE, PHYSICAL_NETWORK
from minstack.errors import MinstackError
from minstack.phase import Phase, Step

PROJECT = DEMO.project
NETWORK = DEMO.network
SUBNET = DEMO.subnet
PUBLIC = DEMO.public_network
PUBLIC_SUBNET = DEMO.public_subnet
ROUTER = DEMO.router


def demo_project(conn):
    project = conn.identity.find_project(PROJECT, domain_id=identity.DOMAIN)
    if project is None:
        raise MinstackError(f"project {PROJECT} does not exist: the accounts phase makes it")
    return project


def find_one(resources, what: str):
    """The single resource listed, None if there is none; refuse to guess between duplicates."""
    found = list(resources)
    if len(found) > 1:
        raise MinstackError(f"{len(found)} {what} exist ({', '.join(r.id for r in found)}); "
                            "delete the extra ones and stack again")
    return found[0] if found else None


def private_network(conn, project):
    return find_one(conn.network.networks(name=NETWORK, project_id=project.id),
                    f"networks named {NETWORK} in project {PROJECT}")


def private_subnet(conn, project, network):
    return find_one(conn.network.subnets(name=SUBNET, network_id=network.id, project_id=project.id),
                    f"subnets named {SUBNET} on network {NETWORK}")


def network_is_there(settings) -> bool:
    """Both exist, once each, on FIXED_RANGE."""
    conn = identity.admin_connection(settings)
    project = demo_project(conn)
    network = private_network(conn, project)
    subnet = network and private_subnet(conn, project, network)
    return bool(subnet) and subnet.cidr == str(settings.fixed_range)


def ensure_private_network(ctx) -> None:
    s = ctx.settings
    conn = identity.admin_connection(s)
    project = demo_project(conn)
    network = private_network(conn, project)
    if network is None:
        network = conn.network.create_network(name=NETWORK, project_id=project.id)
        ctx.log.info("created network %s (%s)", NETWORK, network.id)
    subnet = private_subnet(conn, project, network)
    if subnet is None:
        subnet = conn.network.create_subnet(name=SUBNET, network_id=network.id, project_id=project.id,
                                            ip_version=4, cidr=str(s.fixed_range), is_dhcp_enabled=True)
        ctx.log.info("created subnet %s %s (%s)", SUBNET, subnet.cidr, subnet.id)
    if subnet.cidr != str(s.fixed_range):
        # never renumber a network that ports may use: say what to do instead
        raise MinstackError(f"{SUBNET} is {subnet.cidr} but FIXED_RANGE is {s.fixed_range}; delete the "
                            f"subnet (and its ports) or set FIXED_RANGE={subnet.cidr}")


def public_network(conn):
    return find_one(conn.network.networks(name=PUBLIC, is_router_external=True), f"external networks named {PUBLIC}")


def public_subnet(conn, network):
    return find_one(conn.network.subnets(name=PUBLIC_SUBNET, network_id=network.id),
                    f"subnets named {PUBLIC_SUBNET} on network {PUBLIC}")


def public_is_there(settings) -> bool:
    conn = identity.admin_connection(settings)
    network = public_network(conn)
    subnet = network and public_subnet(conn, network)
    return bool(subnet) and subnet.cidr == str(settings.floating_range) and \
        subnet.gateway_ip == str(settings.public_network_gateway)


def ensure_public_network(ctx) -> None:
    s = ctx.settings
    conn = identity.admin_connection(s)
    network = public_network(conn)
    if network is None:
        network = conn.network.create_network(name=PUBLIC, is_router_external=True,
                                              provider_network_type="flat",
                                              provider_physical_network=PHYSICAL_NETWORK)
        ctx.log.info("created external network %s (%s)", PUBLIC, network.id)
    subnet = public_subnet(conn, network)
    if subnet is None:
        subnet = conn.network.create_subnet(name=PUBLIC_SUBNET, network_id=network.id, ip_version=4,
                                            cidr=str(s.floating_range), gateway_ip=str(s.public_network_gateway),
                                            is_dhcp_enabled=False)
        ctx.log.info("created subnet %s %s (%s)", PUBLIC_SUBNET, subnet.cidr, subnet.id)
    if subnet.cidr != str(s.floating_range) or subnet.gateway_ip != str(s.public_network_gateway):
        raise MinstackError(f"{PUBLIC_SUBNET} is {subnet.cidr} with gateway {subnet.gateway_ip}, but FLOATING_RANGE "
                            f"is {s.floating_range} and PUBLIC_NETWORK_GATEWAY {s.public_network_gateway}; "
                            f"release its floating IPs and delete it, or set those settings to match")


def router(conn, project):
    return find_one(conn.network.routers(name=ROUTER, project_id=project.id),
                    f"routers named {ROUTER} in project {PROJECT}")


@dataclass
class RouterSeen:
    """What the router probe found, and what it lacks (nothing: router1 is as wanted)."""

    conn: object
    project: object
    public: object
    router: object
    subnet: object
    lacks: list[str]

    def __bool__(self) -> bool:
        return bool(self.lacks)


def observe_router(settings) -> RouterSeen:
    """router1, its gateway on public and its interface on private-subnet: what is missing."""
    conn = identity.admin_connection(settings)
    project = demo_project(conn)
    public = public_network(conn)
    network = private_network(conn, project)
    subnet = network and private_subnet(conn, project, network)
    found = router(conn, project)
    lacks = []
    if found is None:
        lacks += ["router", "gateway", "interface"]
    else:
        if (found.external_gateway_info or {}).get("network_id") != (public and public.id):
            lacks.append("gateway")
        interfaces = conn.network.ports(device_id=found.id, device_owner="network:router_interface")
        if not (subnet and any(ip["subnet_id"] == subnet.id for port in interfaces for ip in port.fixed_ips)):
            lacks.append("interface")
    return RouterSeen(conn, project, public, found, subnet, lacks)


def ensure_router(ctx, seen: RouterSeen) -> None:
    conn, found, gateway = seen.conn, seen.router, {"network_id": seen.public.id, "enable_snat": True}
    if "router" in seen.lacks:
        found = conn.network.create_router(name=ROUTER, project_id=seen.project.id, external_gateway_info=gateway)
        ctx.log.info("created router %s (%s)", ROUTER, found.id)
    elif "gateway" in seen.lacks:
        conn.network.update_router(found, external_gateway_info=gateway)
    if "interface" in seen.lacks:
        conn.network.add_interface_to_router(found, subnet_id=seen.subnet.id)
        ctx.log.info("router %s: interface on %s", ROUTER, SUBNET)


class Network(Phase):
    def steps(self, ctx):
        s = ctx.settings
        return [
            Step("private network", lambda: ensure_private_network(ctx),
                 f"network {NETWORK}, subnet {SUBNET} {s.fixed_range} with DHCP, in project {PROJECT}",
                 check=lambda: network_is_there(s)),
            Step("public network", lambda: ensure_public_network(ctx),
                 f"external flat network {PUBLIC} on {EXTERNAL_BRIDGE}, subnet {s.floating_range} gateway "
                 f"{s.public_network_gateway}", check=lambda: public_is_there(s)),
            Step("router", lambda seen: ensure_router(ctx, seen), f"{ROUTER}: gateway on {PUBLIC} with SNAT, "
                 f"interface on {SUBNET}", observe=lambda: observe_router(s)),
        ]

    def summary(self, settings):
        return [("networks", f"{NETWORK} {settings.fixed_range} (project {PROJECT}) -- {ROUTER} -- "
                             f"{PUBLIC} {settings.floating_range} (gateway {settings.public_network_gateway} "
                             f"on {EXTERNAL_BRIDGE})")]


PHASE = Network(name="network", requires=("neutron", "accounts"), services=("q-svc",))
