"""The catalogue: every service minstack knows, declared once, and the facts phases share.

Each :class:`Project` says, for one OpenStack project or base service:

- its DevStack service names (``n-api``, ``c-vol``, ...) and meta-names
  (``nova``, ``cinder``, ``swift``: all of its services at once),
- which phase (``phases/<phase>.py``) installs it -- or why minstack does not,
- its config files, by the DevStack ``*_CONF`` key that names each one,
- its databases, its Keystone catalog entry and its HTTP APIs (daemon, WSGI
  module, port, URL path),
- what sudoers and Tempest need to know about it.

Everything else is derived from here and never listed again: the supported
service names (minstack.services), the ``*_CONF`` settings (minstack.settings),
the ports and URLs (templates, phases), the sudoers lines (phases/sudoers.py)
and Tempest's ``[service_available]`` (phases/tempest.py).  tests/unit/test_catalogue.py
fails when a phase and this catalogue disagree.

Below the projects: the names and addresses several phases share (the OVSDB
listeners, br-ex, the physical network, DevStack's demo network, router,
keypair and flavors), so that no phase copies another's constants.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping


@dataclass(frozen=True)
class Api:
    """An HTTP API served by uWSGI (there are no *-wsgi scripts any more)."""

    daemon: str            # the supervised process, and its log: $LOGDIR/<daemon>.log
    service: str           # the DevStack service name that enables it
    module: str            # the WSGI module uWSGI serves
    port: int
    path: str = ""         # what the Keystone catalog URL adds to http://host:port (e.g. "/v2.1")
    config_env: str = ""   # how the module finds its config: OS_<PROJECT>_CONFIG_DIR (its config files' dir)
    files_env: str = ""    # ... and which files in it: OS_<PROJECT>_CONFIG_FILES ("a;b")
    ready_path: str = "/"  # what answers once it is up
    uwsgi: bool = True     # False: the project's own server runs it (the phase declares that daemon)
    # requests one uWSGI process serves at once: heat-api needs 2, as its engine calls heat-api back
    # while the first request waits (OS::Heat::Stack validates through it), with API_WORKERS=1 a deadlock
    threads: int = 1
    # the largest chunk of a chunked upload it takes (uWSGI's chunked-input-limit), 0: uWSGI's 1 MiB.
    # glance-api: Nova's snapshots and Cinder's volume uploads send larger chunks, and failed
    # ("unable to receive chunked part") with uWSGI's default
    chunked_input_limit: int = 0


@dataclass(frozen=True)
class CatalogEntry:
    """The project's Keystone service: its user, name, type and the API its endpoints point at."""

    type: str
    name: str
    description: str
    api: str                # the Api.daemon whose URL the endpoints carry
    user: str = ""          # the service user (default: the service name)


@dataclass(frozen=True)
class Project:
    name: str
    services: Mapping[str, str]                       # DevStack name -> what it is
    phase: str | None = None                          # phases/<phase>.py installs it
    unsupported: str = ""                             # why not: "" = not supported *yet*
    planned: bool = True                              # False: enabling it warns and is ignored
    meta: tuple[str, ...] = ()                        # DevStack meta-names: all of services
    config_files: Mapping[str, str] = field(default_factory=dict)  # *_CONF key -> default path
    databases: tuple[str, ...] = ()
    catalog: CatalogEntry | None = None
    apis: tuple[Api, ...] = ()
    ports: Mapping[str, int] = field(default_factory=dict)  # other listeners: name -> port
    rootwrap: tuple[str, ...] = ()                    # the services that call <project>-rootwrap via sudo
    tempest: str = ""                                 # Tempest's [service_available] key
    tempest_service: str = ""                         # ... true when this service is enabled
    in_default: tuple[str, ...] = ()                  # DevStack's default ENABLED_SERVICES among services
    distribution: str = ""                            # its Python distribution in the venv, if any
    devstack_plugin: str = ""                         # DevStack's plugin for it: enable_plugin NAME enables it
    plugin: str = ""                                  # the minstack plugin that declared it ("": built in)

    @property
    def supported(self) -> bool:
        return self.phase is not None


def declare(**kwargs) -> Project:
    """A Project, its mappings frozen (what minstack's projects and plugins' PROJECTS are built with)."""
    for key in ("services", "config_files", "ports"):
        if key in kwargs:
            kwargs[key] = MappingProxyType(dict(kwargs[key]))
    return Project(**kwargs)


PROJECTS: tuple[Project, ...] = (
    # ---- base services ----
    declare(name="mysql", phase="mysql", services={"mysql": "MySQL/MariaDB database server"},
       ports={"mysql": 3306}, in_default=("mysql",)),
    declare(name="postgresql", services={"postgresql": "PostgreSQL database server"}, planned=False,
       unsupported="minstack uses MySQL/MariaDB"),
    declare(name="rabbit", phase="rabbit", services={"rabbit": "RabbitMQ message broker"},
       ports={"rabbit": 5672}, in_default=("rabbit",)),
    # memcached is not a service name, as in DevStack: it comes with keystone.
    declare(name="memcached", phase="memcached", services={}, ports={"memcached": 11211}),
    declare(name="etcd3", services={"etcd3": "etcd key-value store (Cinder coordination)"}, planned=False,
       unsupported="minstack's services do not need etcd", in_default=("etcd3",)),
    declare(name="tls-proxy", services={"tls-proxy": "TLS-terminating proxy in front of the APIs"}),
    # ---- identity, images, placement ----
    declare(name="keystone", phase="keystone", distribution="keystone", services={"key": "Keystone identity service"},
       meta=("keystone",),
       config_files={"KEYSTONE_CONF": "/etc/keystone/keystone.conf"}, databases=("keystone",),
       catalog=CatalogEntry("identity", "keystone", "Keystone Identity Service", api="keystone"),
       apis=(Api("keystone", "key", "keystone.wsgi.api", 5000,
                 config_env="OS_KEYSTONE_CONFIG_DIR", files_env="OS_KEYSTONE_CONFIG_FILES", ready_path="/v3"),),
       in_default=("key",)),
    declare(name="glance", phase="glance", distribution="glance", services={"g-api": "Glance image API"}, meta=("glance",),
       config_files={"GLANCE_API_CONF": "/etc/glance/glance-api.conf"}, databases=("glance",),
       catalog=CatalogEntry("image", "glance", "Glance Image Service", api="glance-api"),
       apis=(Api("glance-api", "g-api", "glance.wsgi.api", 9292, config_env="OS_GLANCE_CONFIG_DIR",
                 chunked_input_limit=64 * 2**20),),
       tempest="glance", tempest_service="g-api", in_default=("g-api",)),
    declare(name="placement", phase="placement", distribution="openstack_placement",
       services={"placement-api": "Placement API",
                 "placement-client": "configure Nova to use Placement (no daemon of its own)"},
       meta=("placement",), config_files={"PLACEMENT_CONF": "/etc/placement/placement.conf"},
       databases=("placement",),
       catalog=CatalogEntry("placement", "placement", "Placement Service", api="placement-api"),
       apis=(Api("placement-api", "placement-api", "placement.wsgi.api", 8778,
                 config_env="OS_PLACEMENT_CONFIG_DIR"),),
       in_default=("placement-api", "placement-client")),
    # ---- compute ----
    declare(name="nova", phase="nova", distribution="nova",
       services={"n-api": "Nova compute API", "n-api-meta": "Nova metadata API", "n-cond": "Nova conductor",
                 "n-sch": "Nova scheduler", "n-cpu": "Nova compute (libvirt)",
                 "n-novnc": "Nova noVNC console proxy"},
       meta=("nova",),
       config_files={"NOVA_CONF": "/etc/nova/nova.conf", "NOVA_CPU_CONF": "/etc/nova/nova-cpu.conf"},
       databases=("nova_api", "nova_cell0", "nova_cell1"),
       catalog=CatalogEntry("compute", "nova", "Nova Compute Service", api="nova-api"),
       apis=(Api("nova-api", "n-api", "nova.wsgi.osapi_compute", 8774, path="/v2.1",
                 config_env="OS_NOVA_CONFIG_DIR", files_env="OS_NOVA_CONFIG_FILES"),
             Api("nova-metadata", "n-api-meta", "nova.wsgi.metadata", 8775,
                 config_env="OS_NOVA_CONFIG_DIR", files_env="OS_NOVA_CONFIG_FILES")),
       ports={"novnc": 6080}, rootwrap=("n-cpu",), tempest="nova", tempest_service="n-api",
       in_default=("n-api", "n-cpu", "n-cond", "n-sch", "n-novnc", "n-api-meta")),
    declare(name="nova-extras",
       services={"n-super-cond": "Nova super-conductor (multi-cell)", "n-spice": "Nova SPICE console proxy",
                 "n-sproxy": "Nova serial console proxy"},
       planned=False, unsupported="minstack runs a single cell and offers the noVNC console"),
    # ---- networking: Neutron with OVN ----
    declare(name="ovn", phase="ovn",
       services={"ovn-northd": "OVN northd and its databases", "ovn-controller": "OVN controller",
                 "ovs-vswitchd": "Open vSwitch daemon", "ovsdb-server": "Open vSwitch database"},
       in_default=("ovn-controller", "ovn-northd", "ovs-vswitchd", "ovsdb-server")),
    declare(name="neutron", phase="neutron", distribution="neutron",
       services={"q-svc": "Neutron server", "q-ovn-agent": "Neutron OVN agent (metadata)"},
       meta=("neutron",),
       config_files={"NEUTRON_CONF": "/etc/neutron/neutron.conf",
                     "Q_ML2_CONF_FILE": "/etc/neutron/plugins/ml2/ml2_conf.ini"},
       databases=("neutron",),
       catalog=CatalogEntry("network", "neutron", "Neutron Networking Service", api="neutron-api"),
       apis=(Api("neutron-api", "q-svc", "neutron.wsgi.api", 9696, path="/",
                 config_env="OS_NEUTRON_CONFIG_DIR", files_env="OS_NEUTRON_CONFIG_FILES"),),
       rootwrap=("q-ovn-agent",), tempest="neutron", tempest_service="q-svc",
       in_default=("q-svc", "q-ovn-agent")),
    declare(name="neutron-ovs-agents",
       services={"q-agt": "Neutron Open vSwitch agent (ML2/OVS)", "q-dhcp": "Neutron DHCP agent (ML2/OVS)",
                 "q-l3": "Neutron L3 agent (ML2/OVS)", "q-meta": "Neutron metadata agent (ML2/OVS)",
                 "q-metering": "Neutron metering agent"},
       planned=False, unsupported="minstack uses OVN, not the ML2/OVS agents"),
    # ---- block storage: Cinder on RBD, from a one-node Ceph (phases/ceph.py, phases/cinder.py) ----
    # Ceph has no DevStack service name here: it runs whenever c-vol or c-bak does (as memcached
    # runs with Keystone).  Its mon listens on loopback only, both messengers (v2, v1).
    declare(name="ceph", phase="ceph", services={}, ports={"ceph-mon": 3300, "ceph-mon-v1": 6789}),
    declare(name="cinder", phase="cinder", distribution="cinder",
       services={"c-api": "Cinder volume API", "c-sch": "Cinder scheduler",
                 "c-vol": "Cinder volume service", "c-bak": "Cinder backup service"},
       meta=("cinder",), config_files={"CINDER_CONF": "/etc/cinder/cinder.conf"}, databases=("cinder",),
       catalog=CatalogEntry("block-storage", "cinder", "Cinder Volume Service", api="cinder-api"),
       # cinder.wsgi.api reads no OS_*_CONFIG_DIR: uWSGI hands it --config-file (phases/cinder.py)
       apis=(Api("cinder-api", "c-api", "cinder.wsgi.api", 8776, path="/v3"),),
       rootwrap=("c-vol",), tempest="cinder", tempest_service="c-api",
       in_default=("c-sch", "c-api", "c-vol")),
    # ---- object storage, orchestration ----
    declare(name="swift", phase="swift", distribution="swift",
            services={"s-proxy": "Swift proxy", "s-object": "Swift object server",
                      "s-container": "Swift container server", "s-account": "Swift account server"},
            meta=("swift",), config_files={"SWIFT_CONFIG_PROXY_SERVER": "/etc/swift/proxy-server.conf"},
            catalog=CatalogEntry("object-store", "swift", "Swift Object Storage", api="swift-proxy-server"),
            # swift-proxy-server is its own (eventlet) server: no uWSGI module
            apis=(Api("swift-proxy-server", "s-proxy", "", 8080, path="/v1/AUTH_$(project_id)s",
                      ready_path="/healthcheck", uwsgi=False),),
            # DevStack's ports for the storage servers (they listen on loopback: only the proxy calls them)
            ports={"swift-object-server": 6613, "swift-container-server": 6611, "swift-account-server": 6612},
            tempest="swift", tempest_service="s-proxy"),
    declare(name="heat", phase="heat", distribution="openstack-heat",
            services={"h-api": "Heat orchestration API", "h-api-cfn": "Heat CloudFormation API",
                      "h-eng": "Heat engine"},
            meta=("heat",), devstack_plugin="heat",
            config_files={"HEAT_CONF": "/etc/heat/heat.conf"}, databases=("heat",),
            catalog=CatalogEntry("orchestration", "heat", "Heat Orchestration Service", api="heat-api"),
            # heat.wsgi.* read /etc/heat/heat.conf (oslo.config's default place): no env names another
            apis=(Api("heat-api", "h-api", "heat.wsgi.api", 8004, path="/v1/$(project_id)s", threads=2),
                  Api("heat-api-cfn", "h-api-cfn", "heat.wsgi.cfn", 8000, path="/v1")),
            tempest="heat", tempest_service="h-api"),
    # ---- dashboard, tests, DevStack tooling ----
    declare(name="horizon", phase="horizon", distribution="horizon", services={"horizon": "Horizon dashboard"},
       ports={"horizon": 80}, tempest="horizon", tempest_service="horizon", in_default=("horizon",)),
    declare(name="tempest", phase="tempest", services={"tempest": "Tempest test suite (configured, not run)"},
       config_files={"TEMPEST_CONFIG": "$DEST/tempest/etc/tempest.conf"}, in_default=("tempest",)),
    declare(name="devstack-tools",
       services={"dstat": "DevStack's resource usage logger", "memory_tracker": "DevStack's memory usage logger",
                 "file_tracker": "DevStack's open-files logger",
                 "openstack-cli-server": "DevStack's cached openstack CLI server"},
       planned=False, unsupported="DevStack tooling", in_default=("dstat",)),
)

# Other names for a service.  DevStack renamed the OVN metadata agent service
# to q-ovn-agent; local.conf files still say q-ovn-metadata-agent.
SERVICE_ALIASES: Mapping[str, str] = MappingProxyType({"q-ovn-metadata-agent": "q-ovn-agent"})

# DevStack's default ENABLED_SERVICES (stackrc, OVN era), in its order.
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


# ---- projects minstack plugins add (minstack/plugins.py) ---------------------------------------------
_PLUGIN_PROJECTS: dict[str, tuple[Project, ...]] = {}   # plugin name -> its projects


def add_plugin_projects(plugin: str, declared: tuple[Project, ...]) -> None:
    """Declare a plugin's projects (again: replaces what the same plugin declared before)."""
    _PLUGIN_PROJECTS[plugin] = tuple(declared)


def forget_plugins() -> None:
    _PLUGIN_PROJECTS.clear()


def projects() -> tuple[Project, ...]:
    """Every project: minstack's own, then those of the enabled plugins."""
    return PROJECTS + tuple(p for declared in _PLUGIN_PROJECTS.values() for p in declared)


# ---- lookups derived from the projects -------------------------------------------------------------
def project(name: str) -> Project:
    for found in projects():
        if found.name == name:
            return found
    raise KeyError(name)


def project_of_service(service: str) -> Project:
    for found in projects():
        if service in found.services:
            return found
    raise KeyError(service)


def phase_projects(phase: str) -> list[Project]:
    return [p for p in projects() if p.phase == phase]


def phase_services(phase: str) -> tuple[str, ...]:
    """The DevStack services that switch a phase on."""
    return tuple(name for p in phase_projects(phase) for name in p.services)


def known_services() -> dict[str, str]:
    return {name: text for p in projects() for name, text in p.services.items()}


def meta_names() -> dict[str, tuple[str, ...]]:
    """meta-name -> the services it stands for (``cinder`` -> c-api, c-sch, c-vol, c-bak)."""
    return {meta: tuple(p.services) for p in projects() for meta in p.meta}


def api(daemon: str) -> Api:
    for p in projects():
        for found in p.apis:
            if found.daemon == daemon:
                return found
    raise KeyError(daemon)


def ports() -> dict[str, int]:
    """Every fixed port minstack opens, by name (API daemons by their daemon name)."""
    found = {}
    for p in projects():
        found.update({a.daemon: a.port for a in p.apis})
        found.update(p.ports)
    return found


def config_file_defaults() -> dict[str, str]:
    """*_CONF key -> default path (as written in localrc: $DEST may appear)."""
    return {key: path for p in projects() for key, path in p.config_files.items()}


def fixed_file_names() -> dict[str, tuple[str, str]]:
    """*_CONF keys whose file name a WSGI module hard-codes -> (that name, the module).

    Such a file may move to another directory (the module is told the directory) but
    not be renamed: glance.wsgi.api reads <dir>/glance-api.conf, placement.wsgi.api
    <dir>/placement.conf, and nothing else.
    """
    fixed = {}
    for p in projects():
        for found in p.apis:
            if found.config_env and not found.files_env and p.config_files:
                key, default = next(iter(p.config_files.items()))
                fixed[key] = (default.rsplit("/", 1)[-1], found.module)
    return fixed


def url(settings, daemon: str) -> str:
    """The URL of an API on this stack, as its Keystone endpoints carry it."""
    found = api(daemon)
    return f"http://{settings.service_host}:{found.port}{found.path}"


def base_url(settings, daemon: str) -> str:
    """http://host:port of an API, without its path (what answers a readiness probe)."""
    return f"http://{settings.service_host}:{api(daemon).port}"


def keystone_url(settings) -> str:
    return base_url(settings, "keystone")


def rootwrap_projects(settings) -> list[str]:
    """Projects whose enabled services call <project>-rootwrap through sudo (sudoers lines)."""
    return [p.name for p in projects() if p.rootwrap and settings.is_enabled(*p.rootwrap)]


def tempest_available(settings) -> dict[str, bool]:
    """Tempest's [service_available]: each known project, true when its service is stacked."""
    return {p.tempest: bool(p.tempest_service) and settings.is_enabled(p.tempest_service)
            for p in projects() if p.tempest}


# ---- facts several phases share --------------------------------------------------------------------
# Open vSwitch and OVN listen on loopback only (phases/ovn.py opens them; no authentication on them,
# and the services run as the stack user, who cannot use root's unix sockets).
OVSDB_PORT, NB_PORT, SB_PORT = 6640, 6641, 6642
OVSDB_CONNECTION = f"tcp:127.0.0.1:{OVSDB_PORT}"   # the local Open_vSwitch DB: os-vif, the OVN agent
NB_CONNECTION = f"tcp:127.0.0.1:{NB_PORT}"          # OVN Northbound: neutron-server
SB_CONNECTION = f"tcp:127.0.0.1:{SB_PORT}"          # OVN Southbound: neutron, ovn-controller

INTEGRATION_BRIDGE = "br-int"
EXTERNAL_BRIDGE = "br-ex"        # minstack's own bridge for the public network (phases/hostnet.py, ovn.py)
PHYSICAL_NETWORK = "public"      # neutron's flat provider network, mapped to EXTERNAL_BRIDGE


@dataclass(frozen=True)
class DemoCloud:
    """DevStack's names for what a fresh cloud holds (phases/accounts, network, access, verify, tempest)."""

    project: str = "demo"
    network: str = "private"
    subnet: str = "private-subnet"
    public_network: str = "public"
    public_subnet: str = "public-subnet"
    router: str = "router1"
    keypair: str = "minstack"
    flavor: str = "cirros256"      # id c1: 256 MB, 1 GB disk: what the test instance boots in
    flavor_alt: str = "ds512M"     # id d1: 512 MB, 5 GB disk: bigger, for Tempest's resize tests


DEMO = DemoCloud()
