"""Nova: one nova.conf, the cells v2 databases, the APIs under uWSGI and the compute services on libvirt.

Processes (each as the stack user, logging to $LOGDIR/<name>.log):
  nova-api          uWSGI serving nova.wsgi.osapi_compute on 8774 (n-api)
  nova-metadata     uWSGI serving nova.wsgi.metadata on 8775 (n-api-meta)
  nova-conductor    (n-cond)
  nova-scheduler    (n-sch)
  nova-compute      the libvirt driver; in the libvirt group for libvirtd's socket (n-cpu)
  nova-novncproxy   noVNC consoles on 6080, web files from Debian's novnc (n-novnc)

Cells v2 as DevStack sets it up on one host: nova_api (the API database),
nova_cell0 (where instances that could not be scheduled go) and nova_cell1
(the one real cell, [database] in nova.conf).  The libvirt domain type comes
from the libvirt phase's probe (minstack/virt.py): qemu here, where KVM is broken.

Volumes (c-vol on minstack's one-node Ceph): nova-compute attaches them as libvirt network
disks, which QEMU opens through librbd as client.cinder; nothing is mapped on the host.
QEMU gets that client's key from a libvirt secret (usage type ceph) whose UUID minstack
derives from the cluster's fsid and writes as ``[libvirt] rbd_secret_uuid`` (cinder.conf
carries the same value).  The key goes into libvirt from a file, never on a command line.
"""
from __future__ import annotations

import datetime
import grp
import os
import pwd
import shutil
import socket
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from minstack import catalogue, identity, mysql, rootwrap, templates, virt
from minstack.apiservice import ApiService
from minstack.catalogue import DEMO
from minstack.context import Wanted
from minstack.derived_secrets import metadata_secret
from minstack.errors import MinstackError
from minstack.phase import Step
from minstack.probes import http_ok, reported_since_start
from minstack.supervisor import Daemon

from . import ceph  # the cluster's fsid and client key (for volumes on RBD)

# NOVA_CONF (/etc/nova/nova.conf) and NOVA_CPU_CONF (nova-compute's own: nova.conf without the
# database sections) are where the catalogue and the user's localrc say.
PASTE = "api-paste.ini"
NOVNC_WEB = Path("/usr/share/novnc")
# nova exits 20 s after SIGTERM ([DEFAULT] graceful_shutdown_timeout in nova.conf.j2); room before SIGKILL.
STOP_TIMEOUT = 45.0

# DevStack's flavors (lib/nova create_flavors): name -> (id, RAM MB, disk GB, vCPUs)
FLAVORS = {
    "m1.tiny": ("1", 512, 1, 1),
    "m1.small": ("2", 2048, 20, 1),
    "m1.medium": ("3", 4096, 40, 2),
    "m1.large": ("4", 8192, 80, 4),
    "m1.xlarge": ("5", 16384, 160, 8),
    DEMO.flavor: ("c1", 256, 1, 1),          # cirros256: what the test instance boots in
    DEMO.flavor_alt: ("d1", 512, 5, 1),      # ds512M
    "ds1G": ("d2", 1024, 10, 1),
    "ds2G": ("d3", 2048, 10, 2),
    "ds4G": ("d4", 4096, 20, 4),
}
FLAVOR_EXTRA_SPECS = {"hw_rng:allowed": "True"}

# libvirt: where libvirtd keeps persistent secrets (<uuid>.xml, <uuid>.base64; root 0700)
VIRSH = "/usr/bin/virsh"
LIBVIRT_URI = "qemu:///system"
SECRETS_DIR = Path("/etc/libvirt/secrets")
SECRET_MARKER = "minstack:"           # how --clean knows minstack's secrets (their <description>)

# The nova services with their own process (not uWSGI): DevStack service -> daemon name
SERVICE_DAEMONS = {"n-cond": "nova-conductor", "n-sch": "nova-scheduler", "n-cpu": "nova-compute",
                   "n-novnc": "nova-novncproxy"}


def novnc_url(settings) -> str:
    return f"http://{settings.service_host}:{catalogue.ports()['novnc']}/vnc_lite.html"


def host_name() -> str:
    """Nova's [DEFAULT] host: the host name, as nova-compute registers itself."""
    return socket.gethostname()




def attaches_rbd(settings) -> bool:
    """nova-compute runs here and Cinder's volumes are RBD images on minstack's Ceph."""
    return settings.is_enabled("n-cpu") and settings.is_enabled("c-vol")


def rbd_secret_uuid(settings) -> str | None:
    """[libvirt] rbd_secret_uuid: the cluster's (None before the ceph phase made it)."""
    fsid_file = ceph.layout(settings).fsid_file
    return ceph.secret_uuid(fsid_file.read_text().strip()) if fsid_file.exists() else None


def secret_xml(secret_uuid: str, fsid: str) -> str:
    """The libvirt secret QEMU reads client.cinder's key from.  Not private: nova-compute (and
    `virsh secret-get-value`, which is how minstack compares it) may read it back; whoever may
    talk to libvirtd can read the keyring too (root:<stack user> 0640).  The usage name carries
    the fsid: a secret of an earlier cluster never blocks the new one's (libvirt allows one
    secret per usage name)."""
    return (f"<secret ephemeral='no' private='no'>\n"
            f"  <uuid>{secret_uuid}</uuid>\n"
            f"  <description>{SECRET_MARKER} client.{ceph.CLIENT} of Ceph cluster {fsid}</description>\n"
            f"  <usage type='ceph'>\n"
            f"    <name>client.{ceph.CLIENT} secret {fsid}</name>\n"
            f"  </usage>\n"
            f"</secret>\n")


def secret_fields(xml: str) -> dict[str, str | None]:
    """What counts in a secret's XML (as `virsh secret-dumpxml` prints it, or as written)."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return {}
    usage = root.find("usage")
    return {"ephemeral": root.get("ephemeral"), "private": root.get("private"),
            "uuid": root.findtext("uuid"), "description": root.findtext("description"),
            "usage": usage.get("type") if usage is not None else None,
            "name": usage.findtext("name") if usage is not None else None}


def cpu_mode(virt_type: str) -> str:
    """qemu (TCG): no CPU model (cpu_mode none, as DevStack's default); kvm: the host's own CPU."""
    return "host-passthrough" if virt_type == "kvm" else "none"


# ---- probes that read nova's databases (cheap, and independent of nova-api) -------------------------
def cell_names() -> set[str]:
    """The cells mapped in nova_api (empty before api_db sync)."""
    with mysql.admin_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'nova_api' AND table_name = 'cell_mappings'")
        if cur.fetchone() is None:
            return set()
        cur.execute("SELECT name FROM nova_api.cell_mappings")
        return {row[0] for row in cur.fetchall()}


def host_mapped(host: str) -> bool:
    """discover_hosts mapped this compute host to its cell."""
    with mysql.admin_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'nova_api' AND table_name = 'host_mappings'")
        if cur.fetchone() is None:
            return False
        cur.execute("SELECT 1 FROM nova_api.host_mappings WHERE host = %s", (host,))
        return cur.fetchone() is not None


def service_reported_since(binary: str, host: str, since: datetime.datetime) -> bool:
    """The service wrote its record in nova_cell1.services at or after since (naive UTC, as nova writes)."""
    with mysql.admin_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT created_at, updated_at FROM nova_cell1.services "
                    "WHERE `binary` = %s AND host = %s AND deleted = 0", (binary, host))
        row = cur.fetchone()
    return row is not None and max(t for t in row if t is not None) >= since


def reports_state(binary: str):
    """Readiness of a nova RPC service: it has reported to the database since it was started.

    A service (re)started now writes its record within ~5 s (servicegroup's first
    report); an old record from before the start does not count.
    """
    return reported_since_start(lambda since: service_reported_since(binary, host_name(), since))


class Nova(ApiService):
    project = "nova"

    def extra_daemons(self, ctx):
        s = ctx.settings
        found = []
        for service, name in SERVICE_DAEMONS.items():
            if not s.is_enabled(service):
                continue
            if name == "nova-novncproxy":
                ready = lambda: http_ok(novnc_url(s))  # noqa: E731
            else:
                ready = reports_state(name)
            conf = self.conf(s, "NOVA_CPU_CONF" if name == "nova-compute" else "NOVA_CONF")
            found.append(Daemon(name, [str(s.venv / "bin" / name), "--config-file", str(conf)], user=s.stack_user,
                                service=service, ready=ready, ready_timeout=s.service_timeout,
                                stop_timeout=STOP_TIMEOUT))
        return found

    def config_files_env(self, settings, api):
        """nova.wsgi loads its paste pipelines from the first file OS_NOVA_CONFIG_FILES names (its
        default is "api-paste.ini;nova.conf"): name the paste file first, then NOVA_CONF."""
        env = super().config_files_env(settings, api)
        env[api.files_env] = f"{self.etc / PASTE};{env[api.files_env]}"
        return env

    def needs_database(self, settings) -> bool:
        return True  # every nova service but nova-compute uses it; a phase without them is a compute node

    def before_config(self, ctx):
        s = ctx.settings
        data = s.data_dir / "nova"
        instances = data / "instances"

        def wanted():
            dirs = [ctx.directory(data, owner=s.stack_user), ctx.directory(instances, owner=s.stack_user),
                    ctx.directory(data / "locks", owner=s.stack_user, mode=0o750)]
            # qemu runs as libvirt-qemu: it must be able to walk down to the instance disks
            for parent in instances.parents:
                if parent.exists() and parent.stat().st_mode & 0o001 == 0:
                    st = parent.stat()
                    dirs.append(Wanted(parent, None, (st.st_mode & 0o7777) | 0o001,
                                       pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name))
            return dirs

        return [ctx.files_step("state dirs", f"{instances} and {data}/locks owned by {s.stack_user}, "
                                             "every parent o+x (qemu runs as libvirt-qemu)", wanted)]

    def configure(self, ctx):
        s = ctx.settings
        daemons = {d.name for d in self.daemons(ctx)}
        data = s.data_dir / "nova"
        # the libvirt phase probed and recorded it; a host without n-cpu runs no guests
        kind = virt.virt_type(s, ctx.log) if s.is_enabled("n-cpu") else "qemu"
        values = dict(conf_dir=self.etc, rootwrap_conf=rootwrap.conf_path("nova"), state_path=data,
                      lock_path=data / "locks", virt_type=kind, cpu_mode=cpu_mode(kind), cpu_models=[],
                      novnc_web=NOVNC_WEB, metadata_secret=metadata_secret(s),
                      ovsdb_connection=catalogue.OVSDB_CONNECTION,
                      rbd_user=ceph.CLIENT if s.is_enabled("c-vol") else None,
                      rbd_secret_uuid=(rbd_secret_uuid(s) or "(after ceph)") if s.is_enabled("c-vol") else None)
        files = [ctx.directory(self.etc, owner="root", group=s.stack_user, mode=0o750),
                 ctx.copy(self.shipped(s, PASTE), self.etc / PASTE, **self.private(s),
                          restarts=tuple(daemons & {"nova-api", "nova-metadata"})),
                 ctx.template("nova/nova.conf.j2", self.conf(s, "NOVA_CONF"), **self.private(s), compute_only=False,
                              **values, restarts=tuple(daemons - {"nova-compute"}))]
        if "nova-compute" in daemons:
            files.append(ctx.template("nova/nova.conf.j2", self.conf(s, "NOVA_CPU_CONF"), **self.private(s),
                                      compute_only=True, **values, restarts=("nova-compute",)))
        return files

    def after_config(self, ctx):
        s = ctx.settings
        compute = ("nova-compute",) if s.is_enabled("n-cpu") else ()
        steps = [rootwrap.step(ctx, "nova", compute, "nova-compute's privileged commands")]
        if attaches_rbd(s):
            steps.append(Step("libvirt secret", lambda differs: ensure_secret(ctx, differs),
                              f"libvirt secret {rbd_secret_uuid(s) or '(derived from the Ceph fsid)'} (usage ceph) "
                              f"holding client.{ceph.CLIENT}'s key, for QEMU to open RBD volumes",
                              observe=lambda: secret_differs(ctx)))
        return steps

    def db_steps(self, ctx):
        s = ctx.settings
        conf = self.conf(s)

        def map_cell0():
            # Without --database_connection nova-manage derives cell0's URL from [database]
            # connection plus "_cell0": pointing that at "nova" (through the environment, so the
            # password stays off the command line) yields nova_cell0.
            main_db = templates.common_context(s)["db_url"]("nova").replace("$", "$$")  # oslo.config: $
            ctx.sh.run([str(s.venv / "bin" / "nova-manage"), "--config-file", str(conf), "cell_v2", "map_cell0"],
                       user=s.stack_user, env={"OS_DATABASE__CONNECTION": main_db})

        create_cell1 = self.sync(ctx, "create cell1", "cell_v2", "create_cell", "--name", "cell1", "--verbose")
        return [
            self.sync(ctx, "api_db sync", "api_db", "sync"),
            Step("map cell0", map_cell0, "nova-manage cell_v2 map_cell0 (database nova_cell0)",
                 check=lambda: "cell0" in cell_names()),
            self.sync(ctx, "db sync", "db", "sync",
                      describe="nova-manage db sync (nova_cell1, and nova_cell0 through its mapping)"),
            Step(create_cell1.name, create_cell1.action, create_cell1.describe, check=lambda: "cell1" in cell_names()),
            self.sync(ctx, "online data migrations", "db", "online_data_migrations"),
        ]

    def after_start(self, ctx):
        s = ctx.settings
        daemons = {d.name for d in self.daemons(ctx)}
        steps = []

        def discover_hosts():
            # discover_hosts maps the compute nodes it finds; nova-compute makes its node (and the
            # node's resource provider) in its first seconds.  The hypervisor list shows only mapped hosts.
            host = host_name()
            wait_until(s, f"nova-compute on {host} is up and its resource provider is in placement",
                       lambda conn: compute_service_up(conn, host) and resource_provider(conn, host) is not None,
                       ctx.log)
            ctx.sh.run([str(s.venv / "bin" / "nova-manage"), "--config-file", str(self.conf(s)),
                        "cell_v2", "discover_hosts", "--verbose"], user=s.stack_user)
            wait_until(s, f"the hypervisor {host} is listed", lambda conn: hypervisor(conn, host) is not None,
                       ctx.log)

        if "nova-api" in daemons:
            steps.append(Step("flavors", lambda missing: ensure_flavors(identity.admin_connection(s), missing, ctx.log),
                              f"DevStack's flavors: {', '.join(FLAVORS)}",
                              observe=lambda: missing_flavors(identity.admin_connection(s))))
        if {"nova-compute", "nova-api"} <= daemons:
            steps.append(Step("discover hosts", discover_hosts,
                              f"once nova-compute on {host_name()} registered: nova-manage cell_v2 discover_hosts",
                              check=lambda: host_mapped(host_name())))
        return steps

    def summary(self, settings):
        rows = super().summary(settings)
        if settings.is_enabled("n-novnc"):
            rows.append(("noVNC", novnc_url(settings)))
        return rows

    def stop(self, ctx):
        power_off_instances(ctx)

    def clean(self, ctx):
        destroy_instances(ctx)
        remove_vif_taps(ctx)
        remove_secrets(ctx)
        super().clean(ctx)  # databases, /etc/nova
        ctx.remove_trees(ctx.settings.data_dir / "nova")  # state, instances


# ---- helpers -------------------------------------------------------------------------------------------

def missing_flavors(conn) -> list[str]:
    have = {flavor.name for flavor in conn.compute.flavors(is_public=None)}
    return [name for name in FLAVORS if name not in have]


def ensure_flavors(conn, missing: list[str], log) -> None:
    """Create the DevStack flavors that do not exist (by name), with their id and hw_rng:allowed."""
    for name in missing:
        flavor_id, ram, disk, vcpus = FLAVORS[name]
        flavor = conn.compute.create_flavor(name=name, id=flavor_id, ram=ram, disk=disk, vcpus=vcpus,
                                            is_public=True)
        conn.compute.create_flavor_extra_specs(flavor, FLAVOR_EXTRA_SPECS)
        log.info("created flavor %s (id %s: %d MB, %d GB, %d vCPU)", name, flavor_id, ram, disk, vcpus)


def compute_service_up(conn, host: str) -> bool:
    return any(svc.state == "up" for svc in conn.compute.services(binary="nova-compute", host=host))


def resource_provider(conn, host: str):
    """The placement resource provider nova-compute made for its node (named after the host)."""
    return next(iter(conn.placement.resource_providers(name=host)), None)


def hypervisor(conn, host: str):
    """This host's hypervisor as the compute API lists it (only once discover_hosts mapped the host)."""
    for found in conn.compute.hypervisors(details=True):
        if (found.service_details or {}).get("host") == host or found.name == host:
            return found
    return None


def wait_until(settings, what: str, condition, log, interval: float = 2.0) -> None:
    """Poll condition(admin connection) until true, for at most SERVICE_TIMEOUT seconds."""
    conn = identity.admin_connection(settings)
    started = time.monotonic()
    while not condition(conn):
        if time.monotonic() - started > settings.service_timeout:
            raise MinstackError(f"timed out after {settings.service_timeout}s waiting until {what}; "
                                "see $LOGDIR/nova-compute.log")
        time.sleep(interval)
    log.info("%s (after %.1fs)", what, time.monotonic() - started)


def nova_domains(ctx, *flags: str) -> list[str]:
    """Nova's guests: the libvirt domains named instance-* (--all or only the running ones)."""
    listed = ctx.sh.run(["virsh", "-c", "qemu:///system", "list", "--name", *flags], check=False, quiet=True)
    return [name for name in listed.stdout.split() if name.startswith("instance-")] if listed.ok else []


def power_off_instances(ctx) -> None:
    """./unstack.py: the guests' qemu processes stop; their definitions and disks stay, and
    nova-compute powers them on again at the next ./stack.py (resume_guests_state_on_host_boot)."""
    for name in nova_domains(ctx):
        ctx.sh.run(["virsh", "-c", "qemu:///system", "destroy", name], check=False)


def remove_vif_taps(ctx) -> None:
    """os-vif makes a persistent tap per guest port (tap<port id>, a neutron fa:16:3e MAC); with the
    guests and libvirt gone they stay behind in the kernel: remove those, nothing else."""
    for link in sorted(Path("/sys/class/net").glob("tap*")):
        try:
            mac = (link / "address").read_text().strip()
        except OSError:
            continue
        if mac.startswith("fa:16:3e:"):
            ctx.sh.run(["ip", "link", "delete", link.name], check=False)


def destroy_instances(ctx) -> None:
    """./unstack.py --clean: Nova's guests go with Nova's data; libvirt itself stays installed."""
    for name in nova_domains(ctx, "--all"):
        ctx.sh.run(["virsh", "-c", "qemu:///system", "destroy", name], check=False)
        ctx.sh.run(["virsh", "-c", "qemu:///system", "undefine", "--nvram", name], check=False)


# ---- the libvirt secret of client.cinder ------------------------------------------------------------
def _virsh(ctx, *args: str, **kwargs):
    return ctx.sh.run([VIRSH, "-c", LIBVIRT_URI, *args], check=False, quiet=True, timeout=60, **kwargs)


def client_key() -> str | None:
    """client.cinder's key from its keyring (None before the ceph phase exported it)."""
    try:
        return ceph.key_in(ceph.keyring_path(f"client.{ceph.CLIENT}").read_text())
    except (FileNotFoundError, ValueError):
        return None


def secret_differs(ctx) -> list[str]:
    """What differs for the secret: "missing", "definition", "value" (looked at once).  The value
    is compared as `virsh secret-get-value` prints it: base64 of the stored bytes, which must be
    the cephx key exactly (librados logs a key it cannot decode, whole, in QEMU's log)."""
    s = ctx.settings
    fsid_file = ceph.layout(s).fsid_file
    if not fsid_file.exists() or client_key() is None or not Path(VIRSH).exists():
        return ["missing"]  # the ceph phase has not made the cluster yet (./stack.py plan on a fresh host)
    wanted = secret_xml(rbd_secret_uuid(s), fsid_file.read_text().strip())
    got = _virsh(ctx, "secret-dumpxml", rbd_secret_uuid(s))
    if not got.ok:
        return ["missing"]
    differs = [] if secret_fields(got.stdout) == secret_fields(wanted) else ["definition"]
    value = _virsh(ctx, "secret-get-value", rbd_secret_uuid(s))  # holds the key: quiet
    if not value.ok or value.stdout.strip() != client_key():
        differs.append("value")
    return differs


def ensure_secret(ctx, differs: list[str]) -> None:
    """Define the secret from an XML file and set its value from a file (`virsh secret-set-value
    --file` decodes the file's base64 text: the key as the keyring holds it, no newline), both
    in a root-only scratch directory removed afterwards: the key is never on a command line."""
    s = ctx.settings
    secret_uuid = rbd_secret_uuid(s)
    fsid = ceph.fsid(s)
    key = client_key()
    if secret_uuid is None or key is None:
        raise MinstackError(f"no Ceph cluster or no client.{ceph.CLIENT} key yet: the ceph phase runs before nova")
    work = Path(tempfile.mkdtemp(prefix="minstack-secret-"))  # 0700, root
    try:
        if "definition" in differs:  # libvirt refuses to change an existing secret's usage in place
            _check(ctx, _virsh(ctx, "secret-undefine", secret_uuid), "secret-undefine")
        if {"missing", "definition"} & set(differs):
            xml = work / "secret.xml"
            xml.write_text(secret_xml(secret_uuid, fsid))
            _check(ctx, _virsh(ctx, "secret-define", "--file", str(xml)), "secret-define")
        value = work / "secret.base64"
        fd = os.open(value, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key)
        _check(ctx, _virsh(ctx, "secret-set-value", "--secret", secret_uuid, "--file", str(value)),
               "secret-set-value")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stored = _virsh(ctx, "secret-get-value", secret_uuid)
    if not stored.ok or stored.stdout.strip() != key:
        raise MinstackError(f"the libvirt secret {secret_uuid} does not hold client.{ceph.CLIENT}'s key after "
                            "secret-set-value: QEMU could not open RBD volumes (virsh secret-get-value)")
    ctx.log.info("libvirt secret %s holds client.%s's key", secret_uuid, ceph.CLIENT)


def _check(ctx, result, what: str) -> None:
    if not result.ok:
        raise MinstackError(f"virsh {what} failed: {result.stderr.strip() or result.stdout.strip()}")


def minstack_secrets(directory: Path = SECRETS_DIR) -> list[str]:
    """The UUIDs of the secrets minstack defined (their description says so), from libvirt's files."""
    found = []
    for path in sorted(directory.glob("*.xml")) if directory.is_dir() else []:
        fields = secret_fields(path.read_text(errors="replace"))
        if (fields.get("description") or "").startswith(SECRET_MARKER) and fields.get("uuid"):
            found.append(fields["uuid"])
    return found


def remove_secrets(ctx) -> None:
    """./unstack.py --clean: minstack's libvirt secrets, through libvirtd where it still runs
    (systemd), else as the files libvirtd keeps them in; nobody else's."""
    for secret_uuid in minstack_secrets(SECRETS_DIR):
        if Path(VIRSH).exists() and _virsh(ctx, "secret-undefine", secret_uuid).ok:
            ctx.log.info("undefined libvirt secret %s", secret_uuid)
            continue
        ctx.remove_files(SECRETS_DIR / f"{secret_uuid}.xml", SECRETS_DIR / f"{secret_uuid}.base64")


# neutron (when q-svc is enabled) before nova: nova-compute boots no server without a network endpoint.
# A requirement that is not enabled drops out of the ordering.
PHASE = Nova(name="nova", requires=("keystone", "accounts", "mysql", "rabbit", "venv", "placement", "glance",
                                    "libvirt", "neutron", "sudoers", "ceph"), debs=("nova",))
