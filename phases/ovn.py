"""Open vSwitch and OVN: the local switch, the OVN databases, northd and the chassis controller.

Every daemon runs as root in the foreground under minstack's supervisor, started
from its binary (not ovs-ctl/ovn-ctl: ovs-ctl gives up when `modprobe openvswitch`
fails, even for the userspace datapath, and both daemonize).  What ovs-ctl and
ovn-ctl would do around them is done here as steps: create or upgrade the
databases, write the chassis identity into the local OVS database before
ovs-vswitchd reads it.

Listeners, all on 127.0.0.1 only (no authentication on them; the services run
as the stack user and cannot use root's unix sockets):
  OVSDB_PORT  the local Open_vSwitch DB (neutron's OVN agent, os-vif in nova-compute)
  NB_PORT     OVN Northbound (neutron-server)
  SB_PORT     OVN Southbound (neutron, ovn-controller)
(the ports and names other phases share are in minstack/catalogue.py)

Without the openvswitch kernel module (this CI host) every bridge uses the
userspace datapath (``netdev``), and ``userspace-tso-enable`` must be set
before ovs-vswitchd starts, or TCP/UDP to guests fails with bad checksums.
"""
from __future__ import annotations

import json
import shutil
import socket
import uuid
from pathlib import Path

from minstack.catalogue import (EXTERNAL_BRIDGE, INTEGRATION_BRIDGE, NB_CONNECTION, NB_PORT, OVSDB_PORT,
                                PHYSICAL_NETWORK, SB_CONNECTION, SB_PORT)
from minstack.errors import MinstackError
from minstack.shell import CommandFailed
from minstack.phase import Phase, Step
from minstack.probes import tcp_open
from minstack.supervisor import Daemon

OVS_RUN = Path("/var/run/openvswitch")
OVN_RUN = Path("/var/run/ovn")
OVN_DB_DIR = Path("/var/lib/ovn")
# On Debian /etc/openvswitch/conf.db is a symlink into /var/lib/openvswitch (made by the package).
OVS_DB = Path("/etc/openvswitch/conf.db")
OVS_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
SYSTEM_ID_FILE = Path("/etc/openvswitch/system-id.conf")  # where ovs-ctl keeps it too
OVS_SOCK = OVS_RUN / "db.sock"


# The server side drops a client that misses its echo for this long; ovsdb-server's
# default (5 s) disconnects a busy neutron-server on a 2-core host (DevStack sets 60 s too).
INACTIVITY_PROBE_MS = 60000


class OvnDb:
    """One of the two OVN databases, served by its own ovsdb-server."""

    def __init__(self, kind: str, schema_name: str, table: str, port: int, ctl: str):
        self.kind = kind                      # "nb" / "sb"
        self.schema_name = schema_name        # OVN_Northbound / OVN_Southbound
        self.table = table                    # the table whose "connections" column names the listeners
        self.port = port
        self.ctl = ctl                        # ovn-nbctl / ovn-sbctl
        self.file = OVN_DB_DIR / f"ovn{kind}_db.db"
        self.schema = Path(f"/usr/share/ovn/ovn-{kind}.ovsschema")
        self.sock = OVN_RUN / f"ovn{kind}_db.sock"
        self.daemon_name = f"ovn-{kind}-ovsdb"

    @property
    def target(self) -> str:
        return f"ptcp:{self.port}:127.0.0.1"


NB = OvnDb("nb", "OVN_Northbound", "NB_Global", NB_PORT, "ovn-nbctl")
SB = OvnDb("sb", "OVN_Southbound", "SB_Global", SB_PORT, "ovn-sbctl")


# ---- pure logic (unit-tested) --------------------------------------------------------------------
def datapath_type(module_loaded: bool, module_loadable: bool) -> str:
    """``system`` (the kernel datapath) where the openvswitch module is or can be loaded, else ``netdev``."""
    return "system" if module_loaded or module_loadable else "netdev"


def wanted_external_ids(system_id: str, hostname: str, encap_ip: str, datapath: str) -> dict[str, str]:
    """The chassis identity ovn-controller reads from the local OVS database."""
    return {
        "system-id": system_id,            # the chassis name in the Southbound DB
        "hostname": hostname,              # = nova's host: neutron binds ports to the chassis of this name
        "ovn-remote": SB_CONNECTION,
        "ovn-encap-type": "geneve",
        "ovn-encap-ip": encap_ip,
        "ovn-bridge": INTEGRATION_BRIDGE,
        "ovn-bridge-datapath-type": datapath,  # ovn-controller creates br-int with it
        "ovn-bridge-mappings": f"{PHYSICAL_NETWORK}:{EXTERNAL_BRIDGE}",
        # neutron schedules router gateways only on chassis that offer it (floating IPs, SNAT)
        "ovn-cms-options": "enable-chassis-as-gw",
    }


def parse_ovsdb_map(cell) -> dict[str, str]:
    """An OVSDB map as ``--format=json`` prints it: ["map", [[k, v], ...]]."""
    if not (isinstance(cell, list) and len(cell) == 2 and cell[0] == "map"):
        raise ValueError(f"not an OVSDB map: {cell!r}")
    return {key: value for key, value in cell[1]}


def map_changes(current: dict[str, str], wanted: dict[str, str]) -> dict[str, str]:
    """The wanted keys whose value is missing or different (other keys are left alone)."""
    return {key: value for key, value in wanted.items() if current.get(key) != value}


def ovs_set_args(column: str, changes: dict[str, str]) -> list[str]:
    """``column:key="value"`` arguments for ``ovs-vsctl set`` (values quoted as OVSDB strings)."""
    return [f"{column}:{key}={json.dumps(value)}" for key, value in sorted(changes.items())]


# ---- the phase -----------------------------------------------------------------------------------
class Ovn(Phase):
    def daemons(self, ctx):
        s = ctx.settings
        sh = ctx.sh
        log = ["-vconsole:info", "-vsyslog:off"]   # stderr -> $LOGDIR/<daemon>.log
        timeout = s.service_timeout

        def ovsdb_server_for(db: OvnDb) -> Daemon:
            return Daemon(db.daemon_name, [
                "/usr/sbin/ovsdb-server", str(db.file),
                f"--remote=punix:{db.sock}",
                # listeners come from the DB's Connection rows (see "listen" below)
                f"--remote=db:{db.schema_name},{db.table},connections",
                f"--pidfile={OVN_RUN}/ovn{db.kind}_db.pid", f"--unixctl={OVN_RUN}/ovn{db.kind}_db.ctl",
                *log], service="ovn-northd", unit_alias=False, ready_timeout=timeout,
                ready=lambda: sh.ok([db.ctl, f"--db=unix:{db.sock}", "--timeout=2", "show"]),
                distro_units=("ovn-central.service", f"ovn-ovsdb-server-{db.kind}.service"), runtime_dirs=("ovn",))

        wanted = {
            "ovsdb-server": Daemon("ovsdb-server", [
                "/usr/sbin/ovsdb-server", str(OVS_DB),
                f"--remote=punix:{OVS_SOCK}", f"--remote=ptcp:{OVSDB_PORT}:127.0.0.1",
                "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                f"--pidfile={OVS_RUN}/ovsdb-server.pid", *log],
                service="ovsdb-server", ready_timeout=timeout,
                ready=lambda: sh.ok(["ovs-vsctl", "--no-wait", "--timeout=2", "show"]),
                distro_units=("openvswitch-switch.service", "ovsdb-server.service"), runtime_dirs=("openvswitch",)),
            # answers on the control socket named after the pid in its (new) pidfile
            "ovs-vswitchd": Daemon("ovs-vswitchd", [
                "/usr/sbin/ovs-vswitchd", f"unix:{OVS_SOCK}", f"--pidfile={OVS_RUN}/ovs-vswitchd.pid", *log],
                service="ovs-vswitchd", ready_timeout=timeout,
                ready=lambda: sh.ok(["ovs-appctl", "--timeout=2", "-t", "ovs-vswitchd", "version"]),
                distro_units=("ovs-vswitchd.service",), runtime_dirs=("openvswitch",)),
            NB.daemon_name: ovsdb_server_for(NB),
            SB.daemon_name: ovsdb_server_for(SB),
            "ovn-northd": Daemon("ovn-northd", [
                "/usr/bin/ovn-northd", f"--ovnnb-db=unix:{NB.sock}", f"--ovnsb-db=unix:{SB.sock}",
                f"--pidfile={OVN_RUN}/ovn-northd.pid", *log],
                service="ovn-northd", ready_timeout=timeout,
                ready=lambda: northd_active(ctx), distro_units=("ovn-northd.service",), runtime_dirs=("ovn",)),
            # ready once connected to the Southbound DB, this host registered as a chassis, br-int made
            "ovn-controller": Daemon("ovn-controller", [
                "/usr/bin/ovn-controller", f"unix:{OVS_SOCK}", f"--pidfile={OVN_RUN}/ovn-controller.pid", *log],
                service="ovn-controller", ready_timeout=timeout,
                ready=lambda: controller_connected(ctx) and chassis_registered(ctx)
                and bridge_exists(ctx, INTEGRATION_BRIDGE),
                distro_units=("ovn-host.service", "ovn-controller.service"), runtime_dirs=("ovn", "openvswitch")),
        }
        return [d for d in wanted.values() if s.is_enabled(d.service)]

    def steps(self, ctx):
        s = ctx.settings
        daemons = {d.name: d for d in self.daemons(ctx)}
        datapath = detect_datapath(ctx)

        # /var/run is a tmpfs: made again after a reboot
        steps = [ctx.files_step("directories", f"{OVS_RUN}, {OVN_RUN}, {OVN_DB_DIR}", lambda: [
            ctx.directory(path) for path in (OVS_RUN, OVN_RUN, OVN_DB_DIR)])]
        if "ovsdb-server" in daemons:
            steps += [
                Step("ovs database", lambda: ensure_db(ctx, OVS_DB, OVS_SCHEMA, daemons["ovsdb-server"]),
                     f"create or upgrade {OVS_DB}", check=lambda: db_current(ctx, OVS_DB, OVS_SCHEMA)),
                ctx.start_step(daemons["ovsdb-server"], f"the local OVS database, also on 127.0.0.1:{OVSDB_PORT}"),
                Step("chassis identity", lambda changes: configure_ovs(ctx, changes),
                     f"system-id, hostname, ovn-remote, geneve on {s.service_host}, datapath {datapath}, "
                     f"bridge mapping {PHYSICAL_NETWORK}:{EXTERNAL_BRIDGE}, userspace TSO",
                     observe=lambda: ovs_config_changes(ctx, datapath)),
            ]
        if "ovs-vswitchd" in daemons:
            if datapath == "system":
                steps.append(Step("kernel module", lambda: ctx.sh.run(["modprobe", "openvswitch"]),
                                  "modprobe openvswitch (the kernel datapath)",
                                  check=lambda: Path("/sys/module/openvswitch").exists()))
            steps += [
                ctx.start_step(daemons["ovs-vswitchd"], f"the switch ({datapath} datapath)"),
                Step(EXTERNAL_BRIDGE, lambda: ensure_bridge(ctx, EXTERNAL_BRIDGE, datapath),
                     f"{EXTERNAL_BRIDGE} ({datapath}) for the public network: no address, no route yet",
                     check=lambda: bridge_datapath(ctx, EXTERNAL_BRIDGE) == datapath),
            ]
        for db in (NB, SB):
            if db.daemon_name in daemons:
                steps += [
                    Step(f"{db.kind} database", lambda db=db: ensure_db(ctx, db.file, db.schema,
                                                                         daemons[db.daemon_name]),
                         f"create or upgrade {db.file}", check=lambda db=db: db_current(ctx, db.file, db.schema)),
                    ctx.start_step(daemons[db.daemon_name], f"ovsdb-server for {db.schema_name}"),
                    Step(f"{db.kind} listens", lambda db=db: listen(ctx, db),
                         f"{db.schema_name} on 127.0.0.1:{db.port}, inactivity probe {INACTIVITY_PROBE_MS} ms",
                         check=lambda db=db: listening(ctx, db)),
                ]
        if "ovn-northd" in daemons:
            steps.append(ctx.start_step(daemons["ovn-northd"], "translates the Northbound DB into logical flows"))
        if "ovn-controller" in daemons:
            steps += [
                ctx.start_step(daemons["ovn-controller"],
                               f"registers this host as an OVN chassis and creates {INTEGRATION_BRIDGE}"),
                # ovn-controller only sets the type on a bridge it creates: fix one left from before
                Step(f"{INTEGRATION_BRIDGE} datapath",
                     lambda: vsctl(ctx, "set", "Bridge", INTEGRATION_BRIDGE, f"datapath_type={datapath}"),
                     f"{INTEGRATION_BRIDGE} uses the {datapath} datapath",
                     check=lambda: bridge_datapath(ctx, INTEGRATION_BRIDGE) == datapath),
            ]
        return steps

    def summary(self, settings):
        if not settings.is_enabled("ovn-northd"):
            return []
        return [("OVN", f"Northbound {NB_CONNECTION}, Southbound {SB_CONNECTION}")]

    def clean(self, ctx):
        """Remove what minstack made: the netdev datapath's tap devices (they outlive ovs-vswitchd),
        the databases (the packages ship only the schemas) and the chassis identity.  The daemons
        are already stopped."""
        if OVS_DB.exists():
            for name in internal_interfaces(ctx, OVS_DB):
                if Path("/sys/class/net", name).exists():
                    ctx.sh.run(["ip", "link", "delete", name])
        files = [OVS_DB.resolve(), SYSTEM_ID_FILE, NB.file, SB.file]
        for path in files:
            for victim in (path, path.with_name(f".{path.name}.~lock~")):
                if victim.exists():
                    victim.unlink()
                    ctx.log.info("removed %s", victim)
        for run_dir in (OVS_RUN, OVN_RUN):
            if run_dir.exists():
                ctx.sh.run(["rm", "-rf", "--one-file-system", str(run_dir)])


# ---- helpers -------------------------------------------------------------------------------------
def vsctl(ctx, *args: str, wait: bool = True) -> str:
    """ovs-vsctl on the local database; ``wait=False`` when ovs-vswitchd may not run yet."""
    argv = ["ovs-vsctl", "--timeout=10"] + ([] if wait else ["--no-wait"]) + list(args)
    return ctx.sh.output(argv)


def detect_datapath(ctx) -> str:
    """Decided by the host, never assumed: `modprobe -n` says whether the module could be loaded."""
    loaded = Path("/sys/module/openvswitch").exists()
    loadable = (not loaded and shutil.which("modprobe") is not None
                and ctx.sh.ok(["modprobe", "-n", "openvswitch"]))
    return datapath_type(loaded, loadable)


def read_system_id() -> str | None:
    if SYSTEM_ID_FILE.exists():
        return SYSTEM_ID_FILE.read_text().strip() or None
    return None


def system_id(ctx) -> str:
    """The chassis name: kept in SYSTEM_ID_FILE (as ovs-ctl does) so it survives a new OVS database."""
    value = read_system_id()
    if value is None:
        value = str(uuid.uuid4())
        ctx.write_file(SYSTEM_ID_FILE, value + "\n")
    return value


def db_current(ctx, db: Path, schema: Path) -> bool:
    """The database exists and already has the installed schema's version."""
    return db.exists() and ctx.sh.output(["ovsdb-tool", "needs-conversion", str(db), str(schema)]).strip() == "no"


def ensure_db(ctx, db: Path, schema: Path, daemon: Daemon) -> None:
    """Create the database, or convert it to a newer schema (a package upgrade), as ovs-ctl/ovn-ctl do."""
    if not db.exists():
        ctx.sh.run(["ovsdb-tool", "create", str(db), str(schema)])
    elif ctx.supervisor.is_running(daemon):  # an offline conversion would fight the running server
        raise MinstackError(f"{db} needs a schema upgrade to {schema} while {daemon.name} runs; "
                            f"stop it (./unstack.py) and stack again")
    else:
        ctx.sh.run(["ovsdb-tool", "convert", str(db), str(schema)])


def open_vswitch_maps(ctx) -> dict[str, dict[str, str]]:
    out = vsctl(ctx, "--format=json", "--columns=external_ids,other_config", "list", "Open_vSwitch", ".",
                wait=False)
    table = json.loads(out)
    row = dict(zip(table["headings"], table["data"][0]))
    return {column: parse_ovsdb_map(row[column]) for column in ("external_ids", "other_config")}


def ovs_config_changes(ctx, datapath: str) -> dict[str, dict[str, str]]:
    """What ovn-controller and ovs-vswitchd read that differs from the wanted values: {column: changes}."""
    s = ctx.settings
    try:
        current = open_vswitch_maps(ctx)
    except CommandFailed:  # a new database has no Open_vSwitch row yet
        current = {"external_ids": {}, "other_config": {}}
    wanted = {
        "external_ids": wanted_external_ids(system_id(ctx), socket.gethostname(), s.service_host, datapath),
        # ovs-vswitchd reads it only when it starts
        "other_config": {"userspace-tso-enable": "true"},
    }
    changes = {column: map_changes(current[column], values) for column, values in wanted.items()}
    return {column: change for column, change in changes.items() if change}


def configure_ovs(ctx, changes: dict[str, dict[str, str]]) -> None:
    """Write the keys that differ (what ovs_config_changes found)."""
    args = [arg for column, change in changes.items() for arg in ovs_set_args(column, change)]
    vsctl(ctx, "init", wait=False)  # the Open_vSwitch row, on a new database (a no-op once it exists)
    vsctl(ctx, "set", "Open_vSwitch", ".", *args, wait=False)
    if "other_config" in changes:
        ctx.restart.add("ovs-vswitchd")


def bridge_datapath(ctx, bridge: str) -> str | None:
    """The bridge's datapath_type ("" is the kernel's default, reported as "system"), None if absent."""
    if not bridge_exists(ctx, bridge):
        return None
    value = vsctl(ctx, "--bare", "--columns=datapath_type", "find", "Bridge", f"name={bridge}", wait=False)
    return value.strip() or "system"


def bridge_exists(ctx, bridge: str) -> bool:
    return ctx.sh.ok(["ovs-vsctl", "--timeout=5", "br-exists", bridge])


def ensure_bridge(ctx, bridge: str, datapath: str) -> None:
    vsctl(ctx, "--may-exist", "add-br", bridge, "--", "set", "Bridge", bridge, f"datapath_type={datapath}")


def internal_interfaces(ctx, db: Path) -> list[str]:
    """OVS internal ports recorded in the database file (read offline: the server may be stopped)."""
    query = ["Open_vSwitch", {"op": "select", "table": "Interface", "where": [["type", "==", "internal"]],
                              "columns": ["name"]}]
    [result] = json.loads(ctx.sh.output(["ovsdb-tool", "query", str(db), json.dumps(query)]))
    return [row["name"] for row in result["rows"]]


def connection_rows(ctx, db: OvnDb) -> list[tuple[str, int]]:
    out = ctx.sh.output([db.ctl, f"--db=unix:{db.sock}", "--timeout=5", "--format=json",
                         "--columns=target,inactivity_probe", "list", "Connection"])
    rows = []
    for target, probe in json.loads(out)["data"]:
        # an unset optional column is an empty set: ["set", []]
        rows.append((target, probe if isinstance(probe, int) else 0))
    return rows


def listening(ctx, db: OvnDb) -> bool:
    return connection_rows(ctx, db) == [(db.target, INACTIVITY_PROBE_MS)] and tcp_open("127.0.0.1", db.port)


def listen(ctx, db: OvnDb) -> None:
    """One listener, on 127.0.0.1 only; ovsdb-server opens it as soon as the row is there."""
    ctx.sh.run([db.ctl, f"--db=unix:{db.sock}", "--timeout=5", "--", "set-connection", db.target,
                "--", "set", "Connection", ".", f"inactivity_probe={INACTIVITY_PROBE_MS}"])
    # ovsdb-server reconfigures its remotes on its next loop: wait for the port to answer
    ctx.sh.run([db.ctl, f"--db=tcp:127.0.0.1:{db.port}", "--timeout=10", "show"], quiet=True)


def northd_active(ctx) -> bool:
    return "Status: active" in ctx.sh.output(["ovn-appctl", "--timeout=2", "-t", "ovn-northd", "status"])


def controller_connected(ctx) -> bool:
    """The running ovn-controller (found through its pidfile) is connected to the Southbound DB."""
    status = ctx.sh.output(["ovn-appctl", "--timeout=2", "-t", "ovn-controller", "connection-status"])
    return status.strip() == "connected"


def chassis_registered(ctx) -> bool:
    """This host's chassis is in the Southbound DB (ovn-controller registered it)."""
    name = read_system_id()
    out = name and ctx.sh.output(["ovn-sbctl", f"--db={SB_CONNECTION}", "--timeout=2", "--bare",
                                  "--columns=name", "find", "Chassis", f"name={name}"])
    return bool(out and out.strip())


PHASE = Ovn(name="ovn", requires=("packages", "prereqs"), debs=("ovn",))
