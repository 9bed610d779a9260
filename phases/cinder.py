"""Cinder: block storage on RBD, from minstack's one-node Ceph (phases/ceph.py); catalogue port 8776.

Processes (each as the stack user, logging to $LOGDIR/<name>.log):
  cinder-api        uWSGI serving cinder.wsgi.api (c-api); the module parses its argv, so uWSGI
                    hands it ``--config-file <CINDER_CONF>`` (pyargv)
  cinder-scheduler  (c-sch)
  cinder-volume     the RBD driver on pool ``volumes`` as client.cinder (c-vol)
  cinder-backup     the Ceph backup driver on pool ``backups`` (c-bak, not in DevStack's defaults)

The RBD driver imports ``rados`` and ``rbd``, which exist only as Debian's python3-rados and
python3-rbd, built for /usr/bin/python3.  The services' venv is built from that same Python
(phases/venv.py), so the two extension modules are linked into its site-packages (as
OpenStack-Ansible does), and nothing else of /usr/lib/python3/dist-packages leaks in, as it
would with ``--system-site-packages`` (Debian's cryptography, requests, WebOb, ... that
ceph-mgr pulls in).

Keystone: service ``cinder`` of type ``block-storage`` (the catalogue's), and ``cinderv3`` of
type ``volumev3`` at the same URL, for clients that still look that type up (DevStack makes both).
"""
from __future__ import annotations

import datetime
import os
import socket
from pathlib import Path

from minstack import catalogue, identity, mysql, rootwrap
from minstack.apiservice import ApiService
from minstack.errors import MinstackError
from minstack.phase import Step
from minstack.probes import reported_since_start
from minstack.supervisor import Daemon

from . import ceph  # the cluster's config, keys and pools

DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")
BINDINGS = ("rados", "rbd")
# DevStack service -> daemon (not uWSGI); each needs Ceph but the scheduler
SERVICE_DAEMONS = {"c-sch": "cinder-scheduler", "c-vol": "cinder-volume", "c-bak": "cinder-backup"}
STOP_TIMEOUT = 45.0          # graceful_shutdown_timeout = 20 in cinder.conf.j2, then room before SIGKILL
VOLUMEV3 = ("cinderv3", "volumev3", "Cinder Volume Service V3")


# ---- pure logic (unit-tested) --------------------------------------------------------------------
def binding_links(site_packages: Path, ext_suffix: str, source: Path = DIST_PACKAGES) -> dict[Path, Path]:
    """link in the venv -> Debian's extension module, for rados and rbd (named by the venv's ABI)."""
    return {site_packages / f"{name}{ext_suffix}": source / f"{name}{ext_suffix}" for name in BINDINGS}


def links_differ(links: dict[Path, Path]) -> list[Path]:
    return [link for link, target in links.items()
            if not link.is_symlink() or os.readlink(link) != str(target)]


def uses_ceph(settings) -> bool:
    return settings.is_enabled("c-vol", "c-bak")


def host_name() -> str:
    return socket.gethostname()


# ---- probes --------------------------------------------------------------------------------------
def service_reported_since(binary: str, host: str, since: datetime.datetime) -> bool:
    """The service wrote its row in cinder.services at or after since (cinder-volume's host is host@ceph)."""
    with mysql.admin_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT created_at, updated_at FROM cinder.services WHERE `binary` = %s "
                    "AND (host = %s OR host LIKE %s) AND deleted = 0", (binary, host, f"{host}@%"))
        rows = cur.fetchall()
    return any(max(t for t in row if t is not None) >= since for row in rows)


def reports_state(binary: str):
    """Readiness of a cinder RPC service: it reported to the database since it was started."""
    return reported_since_start(lambda since: service_reported_since(binary, host_name(), since))


class Cinder(ApiService):
    project = "cinder"

    def extra_daemons(self, ctx):
        s = ctx.settings
        conf = str(self.conf(s))
        return [Daemon(name, [str(s.venv / "bin" / name), "--config-file", conf], user=s.stack_user,
                       service=service, ready=reports_state(name), ready_timeout=s.service_timeout,
                       stop_timeout=STOP_TIMEOUT)
                for service, name in SERVICE_DAEMONS.items() if s.is_enabled(service)]

    def uwsgi_pyargv(self, settings, api):
        return f"--config-file {self.conf(settings)}"

    def needs_database(self, settings) -> bool:
        return settings.is_enabled("c-api", "c-sch", "c-vol", "c-bak")  # every cinder service uses it

    def before_config(self, ctx):
        s = ctx.settings
        data = s.data_dir / "cinder"
        steps = [ctx.files_step("state dirs", f"{data} and {data}/locks owned by {s.stack_user}", lambda: [
            ctx.directory(data, owner=s.stack_user, mode=0o750),
            ctx.directory(data / "locks", owner=s.stack_user, mode=0o750)])]
        if uses_ceph(s):
            steps.append(Step("rados and rbd", lambda missing: link_bindings(ctx, missing),
                              f"Debian's rados and rbd modules linked into {s.venv} (not its whole dist-packages)",
                              observe=lambda: links_differ(venv_binding_links(ctx))))
        return steps

    def configure(self, ctx):
        s = ctx.settings
        conf = self.conf(s)
        daemons = tuple(d.name for d in self.daemons(ctx))
        fsid_file = ceph.layout(s).fsid_file
        secret = ceph.secret_uuid(fsid_file.read_text().strip()) if fsid_file.exists() else "(after ceph)"
        return [ctx.directory(self.etc, owner="root", group=s.stack_user, mode=0o750),
                ctx.copy(self.shipped(s, "api-paste.ini"), conf.parent / "api-paste.ini", **self.private(s),
                         restarts=tuple(d for d in daemons if d == "cinder-api")),
                ctx.copy(self.shipped(s, "resource_filters.json"), conf.parent / "resource_filters.json",
                         **self.private(s), restarts=tuple(d for d in daemons if d == "cinder-api")),
                ctx.template("cinder/cinder.conf.j2", conf, **self.private(s), restarts=daemons,
                             conf_dir=conf.parent, rootwrap_conf=rootwrap.conf_path("cinder"),
                             state_path=s.data_dir / "cinder", lock_path=s.data_dir / "cinder" / "locks",
                             volume=s.is_enabled("c-vol"), backends=s.cinder_enabled_backends,
                             backup=s.is_enabled("c-bak"), ceph_conf=ceph.CONF,
                             rbd_user=ceph.CLIENT, volumes_pool=ceph.VOLUMES, backups_pool=ceph.BACKUPS,
                             secret_uuid=secret)]

    def after_config(self, ctx):
        root = tuple(name for service, name in SERVICE_DAEMONS.items()
                     if service in ("c-vol", "c-bak") and ctx.settings.is_enabled(service))
        return [rootwrap.step(ctx, "cinder", root, "cinder-volume's and cinder-backup's privileged commands")]

    def db_steps(self, ctx):
        return [self.sync(ctx, "db sync", "db", "sync")]

    def account_steps(self, ctx):
        """block-storage (the catalogue's), and volumev3 at the same URL, as DevStack registers them."""
        steps = super().account_steps(ctx)
        s = ctx.settings
        if steps:
            url = catalogue.url(s, "cinder-api")
            name, kind, description = VOLUMEV3
            steps.append(Step(f"{kind} endpoints", lambda differ: ensure_volumev3(s, url),
                              f"service {name} ({kind}), endpoints {url}",
                              observe=lambda: volumev3_differs(s, url)))
        return steps

    def clean(self, ctx):
        super().clean(ctx)  # the database, /etc/cinder
        ctx.remove_trees(ctx.settings.data_dir / "cinder")
        if ctx.settings.venv.exists():
            ctx.remove_files(*venv_binding_links(ctx))


# ---- helpers -------------------------------------------------------------------------------------
def venv_binding_links(ctx) -> dict[Path, Path]:
    """Where the venv's Python looks for extension modules, and the suffix its ABI wants."""
    python = ctx.settings.venv / "bin" / "python"
    out = ctx.sh.output([str(python), "-c", "import sysconfig; "
                         "print(sysconfig.get_paths()['platlib']); print(sysconfig.get_config_var('EXT_SUFFIX'))"])
    site_packages, suffix = out.split()
    return binding_links(Path(site_packages), suffix)


def link_bindings(ctx, differ: list[Path]) -> None:
    links = venv_binding_links(ctx)
    for link in differ:
        target = links[link]
        if not target.exists():
            raise MinstackError(f"{target} is missing: python3-rados and python3-rbd are built for another Python "
                                f"than the venv's ({link.name}); the venv must come from /usr/bin/python3")
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        ctx.log.info("linked %s -> %s", link, target)


def volumev3_differs(settings, url: str) -> list[str]:
    conn = identity.admin_connection(settings)
    name, kind, _ = VOLUMEV3
    service = next((svc for svc in conn.identity.services(type=kind) if svc.name == name), None)
    if service is None:
        return [f"service {name} ({kind}) is missing"]
    have = {e.interface: e.url for e in conn.identity.endpoints(service_id=service.id, region_id=identity.REGION)}
    return [f"{interface} endpoint is not {url}" for interface in ("public", "internal", "admin")
            if have.get(interface) != url]


def ensure_volumev3(settings, url: str) -> None:
    conn = identity.admin_connection(settings)
    name, kind, description = VOLUMEV3
    identity.ensure_endpoints(conn, identity.ensure_service(conn, name, kind, description), url)


# Ceph before Cinder when c-vol or c-bak is on (a requirement that is not enabled drops out).
PHASE = Cinder(name="cinder", requires=("mysql", "rabbit", "memcached", "venv", "keystone", "accounts", "sudoers",
                                        "ceph"))
