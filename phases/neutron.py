"""Neutron on ML2/OVN: the API under uWSGI on port 9696, its workers, and the OVN agent (metadata).

Processes (all as the stack user, each logging to $LOGDIR/<name>.log):
  neutron-api                     uWSGI serving neutron.wsgi.api (config found via OS_NEUTRON_CONFIG_DIR)
  neutron-periodic-workers        the plugins' periodic tasks (quota cleanup, ...)
  neutron-ovn-maintenance-worker  keeps the OVN Northbound DB consistent with neutron's database
  neutron-ovn-agent               per chassis: the metadata proxy (namespace + haproxy) for 169.254.169.254

No neutron-rpc-server (which DevStack still starts): with OVN nothing consumes
neutron's RPC -- no DHCP, L3 or OVS agent runs, and the OVN agent talks to the
OVSDBs only -- so it would be ~200 MB of idle python.

The metadata proxy's shared secret is derived from SERVICE_PASSWORD
(minstack/derived_secrets.py), the same way Nova's phase does for nova.conf.
"""
from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import psutil

from minstack.derived_secrets import metadata_secret
from minstack import identity, mysql, rootwrap, uwsgi
from minstack.errors import MinstackError
from minstack.phase import Phase, Step
from minstack.supervisor import Daemon

ETC = Path("/etc/neutron")
CONF = ETC / "neutron.conf"
ML2_CONF = ETC / "plugins" / "ml2" / "ml2_conf.ini"  # the relative path neutron.wsgi.api looks for
AGENT_CONF = ETC / "neutron_ovn_agent.ini"
PASTE = ETC / "api-paste.ini"
UWSGI_INI = ETC / "neutron-api-uwsgi.ini"
PORT = 9696
# The OVSDB listeners phases/ovn.py opens, on loopback only
OVSDB_CONNECTION = "tcp:127.0.0.1:6640"
NB_PORT = 6641
NB_CONNECTION = f"tcp:127.0.0.1:{NB_PORT}"
SB_CONNECTION = "tcp:127.0.0.1:6642"

SERVER_DAEMONS = ("neutron-api", "neutron-periodic-workers", "neutron-ovn-maintenance-worker")
AGENT_BINARY = "neutron-ovn-agent"
# Agent types neutron reports for the chassis (a gateway chassis has "enable-chassis-as-gw")
CONTROLLER_AGENT_TYPES = ("OVN Controller agent", "OVN Controller Gateway agent")





def api_url(settings) -> str:
    return f"http://{settings.service_host}:{PORT}/"


def state_path(settings) -> Path:
    return settings.data_dir / "neutron"


def lock_path(settings) -> Path:
    return state_path(settings) / "lock"


class Neutron(Phase):
    def daemons(self, ctx):
        s = ctx.settings
        bin_dir = s.venv / "bin"
        server_conf = ["--config-file", str(CONF), "--config-file", str(ML2_CONF)]
        found = []
        if s.is_enabled("q-svc"):
            found.append(uwsgi.daemon(ctx, "neutron-api", "q-svc", UWSGI_INI, api_url(s)))
            for name in SERVER_DAEMONS[1:]:
                daemon = Daemon(name, [str(bin_dir / name), *server_conf], user=s.stack_user, service="q-svc",
                                ready_timeout=s.service_timeout)
                # the maintenance worker's mechanism driver connects to the Northbound DB
                daemon.ready = worker_ready(ctx, daemon, NB_PORT if "ovn" in name else None)
                found.append(daemon)
        if s.is_enabled("q-ovn-agent"):
            found.append(Daemon(AGENT_BINARY, [str(bin_dir / AGENT_BINARY), "--config-file", str(AGENT_CONF)],
                                user=s.stack_user, service="q-ovn-agent", ready_timeout=s.service_timeout,
                                ready=agent_probe(s)))
        return found

    def steps(self, ctx):
        s = ctx.settings
        daemons = {d.name: d for d in self.daemons(ctx)}
        server = s.is_enabled("q-svc")
        group = s.stack_user
        manage = [str(s.venv / "bin" / "neutron-db-manage"), "--config-file", str(CONF),
                  "--config-file", str(ML2_CONF)]
        ovn = dict(ovn_nb_connection=NB_CONNECTION, ovn_sb_connection=SB_CONNECTION)

        def directories():
            ctx.ensure_dir(ETC, owner="root", group=group, mode=0o750)
            ctx.ensure_dir(ML2_CONF.parent, owner="root", group=group, mode=0o750)
            ctx.ensure_dir(state_path(s), owner=group)
            ctx.ensure_dir(lock_path(s), owner=group)

        def write_config():
            private = dict(owner="root", group=group, mode=0o640)  # passwords inside
            restarts = tuple(name for name in SERVER_DAEMONS if name in daemons)
            # oslo.service's paste loader finds api-paste.ini next to neutron.conf
            if ctx.write_file(PASTE, (s.venv / "etc" / "neutron" / "api-paste.ini").read_bytes(), **private):
                ctx.restart.add("neutron-api")
            ctx.render("neutron/neutron.conf.j2", CONF, restarts=restarts, **private,
                       state_path=state_path(s), lock_path=lock_path(s))
            ctx.render("neutron/ml2_conf.ini.j2", ML2_CONF, restarts=restarts, **private, **ovn)
            ctx.render("neutron/neutron_ovn_agent.ini.j2", AGENT_CONF, restarts=(AGENT_BINARY,), **private,
                       rootwrap_conf=rootwrap.conf_path("neutron"), state_path=state_path(s),
                       lock_path=lock_path(s), metadata_secret=metadata_secret(s),
                       ovsdb_connection=OVSDB_CONNECTION, **ovn)

        def install_rootwrap():
            if rootwrap.install(ctx, "neutron"):
                ctx.restart.add(AGENT_BINARY)

        def account():
            identity.ensure_service_account(s, identity.admin_connection(s), "neutron", "neutron", "network",
                                            "Neutron Networking Service", api_url(s))

        steps = [
            Step("directories", directories, f"{ETC} (root:{group} 0750), {state_path(s)}"),
            Step("config", write_config, f"{CONF}, {ML2_CONF}, {AGENT_CONF} from files/templates/neutron/"),
        ]
        if s.is_enabled("q-ovn-agent"):
            steps.append(Step("rootwrap", install_rootwrap,
                              "/etc/neutron/rootwrap.conf and rootwrap.d: the agent's root commands"))
        if server:
            steps += [
                Step("database", lambda: mysql.create_database("neutron"), "create database neutron",
                     check=lambda: mysql.database_exists("neutron")),
                Step("db upgrade", lambda: ctx.sh.run(manage + ["upgrade", "heads"], user=group),
                     "neutron-db-manage upgrade heads", once_key=self.version(ctx)),
                Step("keystone", account, f"user neutron, service network, endpoints {api_url(s)}"),
                Step("uwsgi config", lambda: uwsgi.write_config(
                    ctx, "neutron-api", "neutron.wsgi.api", PORT, UWSGI_INI,
                    env={"OS_NEUTRON_CONFIG_DIR": str(ETC)}), f"{UWSGI_INI}: neutron.wsgi.api"),
            ]
            steps += [Step(f"start {name}", lambda name=name: ctx.start(daemons[name]), describe)
                      for name, describe in (
                          ("neutron-api", f"uWSGI serving Neutron at {api_url(s)}"),
                          ("neutron-periodic-workers", "the plugins' periodic tasks"),
                          ("neutron-ovn-maintenance-worker", "OVN Northbound consistency checks"))]
        if s.is_enabled("q-ovn-agent"):
            steps.append(Step(f"start {AGENT_BINARY}", lambda: ctx.start(daemons[AGENT_BINARY]),
                              "the metadata proxy of this chassis; ready when Neutron lists it alive"))
        if server and s.is_enabled("ovn-controller"):
            steps.append(Step("chassis agent", lambda: wait_for_controller_agent(s),
                              "Neutron lists this host's ovn-controller as an alive agent",
                              check=lambda: agent_alive(identity.admin_connection(s),
                                                        agent_types=CONTROLLER_AGENT_TYPES)))
        return steps

    @staticmethod
    def version(ctx) -> str:
        from importlib.metadata import PathDistribution
        dists = list((ctx.settings.venv / "lib").glob("python3*/site-packages/neutron-*.dist-info"))
        return PathDistribution(dists[0]).version if dists else "unknown"

    def summary(self, settings):
        return [("Neutron", api_url(settings))] if settings.is_enabled("q-svc") else []

    def clean(self, ctx):
        s = ctx.settings
        stop_metadata_proxies(ctx)
        ctx.drop_databases("neutron")
        ctx.remove_trees(ETC, state_path(s))


# ---- probes and helpers ---------------------------------------------------------------------------
def agent_alive(conn, binary: str | None = None, agent_types: tuple[str, ...] = ()) -> bool:
    """Neutron lists an agent of this host (nova's host name) as alive."""
    return any(agent.is_alive for agent in conn.network.agents(host=socket.gethostname())
               if (binary is None or agent.binary == binary)
               and (not agent_types or agent.agent_type in agent_types))


def agent_probe(settings):
    """Ready probe of neutron-ovn-agent: Neutron lists it alive (one keystone session for all tries)."""
    conn = None

    def ready() -> bool:
        nonlocal conn
        conn = conn or identity.admin_connection(settings)
        return agent_alive(conn, binary=AGENT_BINARY)
    return ready


def worker_ready(ctx, daemon: Daemon, to_port: int | None = None):
    """Ready probe of a neutron process that serves nothing: its plugins are loaded and it has
    forked its worker (oslo.service's launcher) -- which, given ``to_port``, is connected there."""
    def ready() -> bool:
        proc = ctx.supervisor.process(daemon)
        workers = proc.children() if proc else []
        if to_port is None:
            return bool(workers)
        return any(conn.status == psutil.CONN_ESTABLISHED and conn.raddr and conn.raddr.port == to_port
                   for worker in workers for conn in worker.net_connections(kind="tcp"))
    return ready


def wait_for_controller_agent(settings) -> None:
    """ovn-controller registered the chassis before neutron-server ran; neutron reads it from the
    Southbound DB, so it shows up as soon as the API answers -- give it the service timeout."""
    conn = identity.admin_connection(settings)
    deadline = time.monotonic() + settings.service_timeout
    while not agent_alive(conn, agent_types=CONTROLLER_AGENT_TYPES):
        if time.monotonic() > deadline:
            raise MinstackError(f"Neutron does not list ovn-controller on {socket.gethostname()} as alive "
                                f"after {settings.service_timeout}s: is the chassis in `ovn-sbctl show`? "
                                "See $LOGDIR/ovn-controller.log and neutron-api.log")
        time.sleep(1)


def stop_metadata_proxies(ctx) -> None:
    """The haproxy processes the OVN agent started (pidfiles under its state path) and their
    ovnmeta-<network> namespaces: made for minstack's networks, removed with them."""
    pids = state_path(ctx.settings) / "external" / "pids"
    for pidfile in sorted(pids.glob("*.pid*")) if pids.exists() else []:
        try:
            pid = int(pidfile.read_text().strip())
            if Path(f"/proc/{pid}/comm").read_text().strip() == "haproxy":
                os.kill(pid, signal.SIGTERM)
                ctx.log.info("stopped the metadata proxy %s (pid %d)", pidfile.name, pid)
        except (OSError, ValueError):
            continue
    for line in ctx.sh.output(["ip", "netns", "list"]).splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith("ovnmeta-"):
            ctx.sh.run(["ip", "netns", "delete", name])


PHASE = Neutron(name="neutron", requires=("keystone", "rabbit", "ovn", "sudoers"),
                services=("q-svc", "q-ovn-agent"), debs=("neutron",))
