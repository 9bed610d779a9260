"""The DevStack service catalogue: names, what minstack supports, the defaults.

Service names are DevStack's, so a DevStack localrc/local.conf keeps working:
every name DevStack users commonly enable is known here.  A known service is
in one of three states:

* supported -- minstack installs it (SUPPORTED_SERVICES; grows as phases land);
* not supported yet -- enabling it is an error at the line that enabled it;
* never supported (NOT_PLANNED) -- enabling it is a warning and it is ignored.
"""
from __future__ import annotations

from minstack.errors import Problem, did_you_mean
from minstack.localrc import ServiceOp

KNOWN_SERVICES: dict[str, str] = {
    # Infrastructure.  memcached is not a service name, as in DevStack: it
    # comes with keystone.
    "mysql": "MySQL/MariaDB database server",
    "postgresql": "PostgreSQL database server",
    "rabbit": "RabbitMQ message broker",
    "etcd3": "etcd key-value store (Cinder coordination)",
    "tls-proxy": "TLS-terminating proxy in front of the APIs",
    # Identity, images, placement
    "key": "Keystone identity service",
    "g-api": "Glance image API",
    "placement-api": "Placement API",
    "placement-client": "configure Nova to use Placement (no daemon of its own)",
    # Compute
    "n-api": "Nova compute API",
    "n-api-meta": "Nova metadata API",
    "n-cond": "Nova conductor",
    "n-super-cond": "Nova super-conductor (multi-cell)",
    "n-sch": "Nova scheduler",
    "n-cpu": "Nova compute (libvirt)",
    "n-novnc": "Nova noVNC console proxy",
    "n-spice": "Nova SPICE console proxy",
    "n-sproxy": "Nova serial console proxy",
    # Networking: Neutron with OVN
    "q-svc": "Neutron server",
    "q-ovn-agent": "Neutron OVN agent (metadata)",
    "ovn-northd": "OVN northd and its databases",
    "ovn-controller": "OVN controller",
    "ovs-vswitchd": "Open vSwitch daemon",
    "ovsdb-server": "Open vSwitch database",
    # Networking: the ML2/OVS agents
    "q-agt": "Neutron Open vSwitch agent (ML2/OVS)",
    "q-dhcp": "Neutron DHCP agent (ML2/OVS)",
    "q-l3": "Neutron L3 agent (ML2/OVS)",
    "q-meta": "Neutron metadata agent (ML2/OVS)",
    "q-metering": "Neutron metering agent",
    # Block storage
    "c-api": "Cinder volume API",
    "c-sch": "Cinder scheduler",
    "c-vol": "Cinder volume service (LVM)",
    "c-bak": "Cinder backup service",
    # Object storage
    "s-proxy": "Swift proxy",
    "s-object": "Swift object server",
    "s-container": "Swift container server",
    "s-account": "Swift account server",
    # Dashboard, tests, DevStack tooling
    "horizon": "Horizon dashboard",
    "tempest": "Tempest test suite (configured, not run)",
    "dstat": "DevStack's resource usage logger",
    "memory_tracker": "DevStack's memory usage logger",
    "file_tracker": "DevStack's open-files logger",
    "openstack-cli-server": "DevStack's cached openstack CLI server",
}

# Other names for a known service.  DevStack renamed the OVN metadata agent
# service to q-ovn-agent; local.conf files still say q-ovn-metadata-agent.
SERVICE_ALIASES: dict[str, str] = {
    "q-ovn-metadata-agent": "q-ovn-agent",
}

# What this minstack installs NOW.  Add a name here when its phase lands.
SUPPORTED_SERVICES: frozenset[str] = frozenset({
    "mysql",
    "rabbit",
    "key",
    "placement-client",  # no daemon: only changes how Nova is configured
    "g-api",
    "placement-api",
    "n-api", "n-cond", "n-sch", "n-cpu", "n-novnc", "n-api-meta",
    "q-svc", "q-ovn-agent", "ovn-northd", "ovn-controller", "ovs-vswitchd", "ovsdb-server",
    "horizon",
    "tempest",  # installed and configured (phases/tempest.py); tools/tempest-smoke.sh runs it
})

# Known services minstack will never install, with the reason shown to the
# user; enabling one is a warning and it is ignored.
NOT_PLANNED: dict[str, str] = {
    "postgresql": "minstack uses MySQL/MariaDB",
    "etcd3": "minstack's services do not need etcd",
    "q-agt": "minstack uses OVN, not the ML2/OVS agents",
    "q-dhcp": "minstack uses OVN, not the ML2/OVS agents",
    "q-l3": "minstack uses OVN, not the ML2/OVS agents",
    "q-meta": "minstack uses OVN, not the ML2/OVS agents",
    "q-metering": "minstack uses OVN, not the ML2/OVS agents",
    "n-super-cond": "minstack runs a single cell",
    "n-spice": "minstack offers the noVNC console",
    "n-sproxy": "minstack offers the noVNC console",
    "s-proxy": "minstack does not install Swift",
    "s-object": "minstack does not install Swift",
    "s-container": "minstack does not install Swift",
    "s-account": "minstack does not install Swift",
    "dstat": "DevStack tooling",
    "memory_tracker": "DevStack tooling",
    "file_tracker": "DevStack tooling",
    "openstack-cli-server": "DevStack tooling",
}

# DevStack's default ENABLED_SERVICES (stackrc, OVN era).  minstack uses the
# part of it that is supported (see default_services), so the default stack
# grows by itself as phases land.
DEFAULT_ENABLED_SERVICES: tuple[str, ...] = (
    "key",
    "n-api", "n-cpu", "n-cond", "n-sch", "n-novnc", "n-api-meta",
    "placement-api", "placement-client",
    "g-api",
    "c-sch", "c-api", "c-vol",
    "ovn-controller", "ovn-northd", "ovs-vswitchd", "ovsdb-server",
    "q-svc", "q-ovn-agent",
    "horizon",
    "rabbit", "tempest", "mysql", "etcd3", "dstat",
)

# Services another enabled service cannot work without (checked for the
# supported services only).
REQUIRES: dict[str, tuple[str, ...]] = {
    "key": ("mysql",),
    "horizon": ("key",),
}


def default_services() -> tuple[str, ...]:
    """DevStack's default set, limited to what this minstack supports."""
    return tuple(name for name in DEFAULT_ENABLED_SERVICES if name in SUPPORTED_SERVICES)


def canonical(name: str) -> str:
    """The catalogue name for name (aliases resolved)."""
    return SERVICE_ALIASES.get(name, name)


def resolve_services(ops: list[ServiceOp], defaults) -> tuple[set[str], list[Problem]]:
    """Apply enable/disable/set ops in order to defaults.

    Unknown names are left out and reported, with a suggestion, at the line
    of the op that named them.
    """
    enabled = {canonical(name) for name in defaults}
    problems: list[Problem] = []
    for op in ops:
        names = []
        for written in op.services:
            name = canonical(written)
            if name in KNOWN_SERVICES:
                names.append(name)
            else:
                problems.append(Problem(op.file, op.line, _unknown_message(written)))
        if op.op == "disable_all":
            enabled.clear()
        elif op.op == "set":
            enabled = set(names)
        elif op.op == "enable":
            enabled.update(names)
        elif op.op == "disable":
            enabled.difference_update(names)
        else:
            raise ValueError(f"unknown service op {op.op!r}")
    return enabled, problems


def check_support(enabled: set[str], ops: list[ServiceOp],
                  file: str) -> tuple[frozenset[str], list[Problem], list[Problem]]:
    """Split the enabled services into what minstack will run, errors and warnings.

    Returns (services to run, errors, warnings).  A problem is reported at the
    op that enabled the service (``file`` without a line if none did).
    """
    run, errors, warnings = set(), [], []
    for name in sorted(enabled):
        where = _enabling_op(name, ops)
        file_, line = (where.file, where.line) if where else (file, None)
        if name in SUPPORTED_SERVICES:
            run.add(name)
        elif name in NOT_PLANNED:
            warnings.append(Problem(file_, line, f"service '{name}' is not supported by minstack "
                                                 f"({NOT_PLANNED[name]}); ignored"))
        else:
            errors.append(Problem(file_, line, f"service '{name}' is not supported by this minstack yet"))
    return frozenset(run), errors, warnings


def check_requirements(enabled: frozenset[str], ops: list[ServiceOp], file: str) -> list[Problem]:
    """A problem for each enabled service whose required service is not enabled,
    at the op that removed the required one (or that enabled the needy one)."""
    problems = []
    for name in sorted(enabled):
        for needed in REQUIRES.get(name, ()):
            if needed in enabled:
                continue
            where = _removing_op(needed, ops) or _enabling_op(name, ops)
            file_, line = (where.file, where.line) if where else (file, None)
            problems.append(Problem(file_, line, f"service '{name}' needs '{needed}', which is not enabled "
                                                 f"(enable_service {needed})"))
    return problems


def _unknown_message(name: str) -> str:
    return f"unknown service '{name}'" + did_you_mean(name, [*KNOWN_SERVICES, *SERVICE_ALIASES])


def _enabling_op(name: str, ops: list[ServiceOp]) -> ServiceOp | None:
    """The last op that enabled name (by enable_service or ENABLED_SERVICES)."""
    for op in reversed(ops):
        if op.op in ("enable", "set") and name in map(canonical, op.services):
            return op
    return None


def _removing_op(name: str, ops: list[ServiceOp]) -> ServiceOp | None:
    """The last op that took name out of the enabled set."""
    for op in reversed(ops):
        if op.op == "disable_all":
            return op
        if op.op == "disable" and name in map(canonical, op.services):
            return op
        if op.op == "set" and name not in map(canonical, op.services):
            return op
    return None
