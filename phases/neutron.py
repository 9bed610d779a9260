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

from minstack import catalogue, identity, rootwrap
from minstack.apiservice import ApiService
from minstack.derived_secrets import metadata_secret
from minstack.errors import MinstackError
from minstack.phase import Step
from minstack.supervisor import Daemon
from minstack.versions import code_key

AGENT_CONF = Path("/etc/neutron/neutron_ovn_agent.ini")
# NEUTRON_CONF and Q_ML2_CONF_FILE are where the catalogue (and the user's localrc) say.

SERVER_DAEMONS = ("neutron-api", "neutron-periodic-workers", "neutron-ovn-maintenance-worker")
AGENT_BINARY = "neutron-ovn-agent"
# Agent types neutron reports for the chassis (a gateway chassis has "enable-chassis-as-gw")
CONTROLLER_AGENT_TYPES = ("OVN Controller agent", "OVN Controller Gateway agent")
OVN = dict(ovn_nb_connection=catalogue.NB_CONNECTION, ovn_sb_connection=catalogue.SB_CONNECTION)


def state_path(settings) -> Path:
    return settings.data_dir / "neutron"


def lock_path(settings) -> Path:
    return state_path(settings) / "lock"


class Neutron(ApiService):
    project = "neutron"

    def server_conf(self, settings) -> list[str]:
        return ["--config-file", str(self.conf(settings, "NEUTRON_CONF")),
                "--config-file", str(self.conf(settings, "Q_ML2_CONF_FILE"))]

    def extra_daemons(self, ctx):
        s = ctx.settings
        bin_dir = s.venv / "bin"
        found = []
        if s.is_enabled("q-svc"):
            for name in SERVER_DAEMONS[1:]:
                daemon = Daemon(name, [str(bin_dir / name), *self.server_conf(s)], user=s.stack_user,
                                service="q-svc", unit_alias=False, ready_timeout=s.service_timeout)
                # the maintenance worker's mechanism driver connects to the Northbound DB
                daemon.ready = worker_ready(ctx, daemon, catalogue.NB_PORT if "ovn" in name else None)
                found.append(daemon)
        if s.is_enabled("q-ovn-agent"):
            found.append(Daemon(AGENT_BINARY, [str(bin_dir / AGENT_BINARY), "--config-file", str(AGENT_CONF)],
                                user=s.stack_user, service="q-ovn-agent", ready_timeout=s.service_timeout,
                                ready=agent_probe(s)))
        return found

    def before_config(self, ctx):
        s = ctx.settings
        group = s.stack_user
        return [ctx.files_step("directories", f"{self.etc} (root:{group} 0750), {state_path(s)}", lambda: [
            ctx.directory(self.etc, owner="root", group=group, mode=0o750),
            ctx.directory(self.conf(s, "Q_ML2_CONF_FILE").parent, owner="root", group=group, mode=0o750),
            ctx.directory(state_path(s), owner=group), ctx.directory(lock_path(s), owner=group)])]

    def configure(self, ctx):
        s = ctx.settings
        private = self.private(s)  # passwords inside
        conf = self.conf(s, "NEUTRON_CONF")
        restarts = tuple(name for name in SERVER_DAEMONS if s.is_enabled("q-svc"))
        return [
            # oslo.service's paste loader finds api-paste.ini next to neutron.conf
            ctx.copy(self.shipped(s, "api-paste.ini"), conf.parent / "api-paste.ini", **private,
                     restarts=("neutron-api",)),
            ctx.template("neutron/neutron.conf.j2", conf, restarts=restarts, **private,
                         state_path=state_path(s), lock_path=lock_path(s)),
            ctx.template("neutron/ml2_conf.ini.j2", self.conf(s, "Q_ML2_CONF_FILE"), restarts=restarts,
                         **private, **OVN),
            ctx.template("neutron/neutron_ovn_agent.ini.j2", AGENT_CONF, restarts=(AGENT_BINARY,), **private,
                         rootwrap_conf=rootwrap.conf_path("neutron"), state_path=state_path(s),
                         lock_path=lock_path(s), metadata_secret=metadata_secret(s),
                         ovsdb_connection=catalogue.OVSDB_CONNECTION, **OVN),
        ]

    def after_config(self, ctx):
        if not ctx.settings.is_enabled("q-ovn-agent"):
            return []
        return [rootwrap.step(ctx, "neutron", (AGENT_BINARY,), "the agent's root commands")]

    def db_steps(self, ctx):
        s = ctx.settings
        manage = [str(s.venv / "bin" / "neutron-db-manage"), *self.server_conf(s), "upgrade", "heads"]
        return [Step("db upgrade", lambda: ctx.sh.run(manage, user=s.stack_user), "neutron-db-manage upgrade heads",
                     once_key=code_key(s.venv, self.entry.distribution))]

    def after_start(self, ctx):
        s = ctx.settings
        if not (s.is_enabled("q-svc") and s.is_enabled("ovn-controller")):
            return []
        return [Step("chassis agent", lambda: wait_for_controller_agent(s),
                     "Neutron lists this host's ovn-controller as an alive agent",
                     check=lambda: agent_alive(identity.admin_connection(s), agent_types=CONTROLLER_AGENT_TYPES))]

    def clean(self, ctx):
        stop_metadata_proxies(ctx)
        super().clean(ctx)
        ctx.remove_trees(state_path(ctx.settings))


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


PHASE = Neutron(name="neutron", requires=("keystone", "rabbit", "ovn", "sudoers"), debs=("neutron",))
