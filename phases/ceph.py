"""Ceph: a one-node cluster for Cinder's RBD volumes -- one mon, one mgr, one OSD on a sparse file.

No kernel part is needed: no device-mapper (ceph-volume, LVM), no loop device, no kernel rbd.
QEMU and cinder-volume reach the cluster through librados/librbd.  Everything is made the way
Ceph's own src/vstart.sh makes a development cluster, from Debian's packages (Pacific 16.2):

  mon   keys made by ceph-authtool inside files, a monmap, ``ceph-mon --mkfs``
  mgr   its key is in the mon's first keyring (no ``auth add``); it loads only the ten
        always-on modules (a directory of links: every module it finds costs memory)
  osd   ``ceph osd new`` with the OSD's key in a 0600 JSON file, then ``ceph-osd --mkfs``,
        which creates the BlueStore block as a sparse file (bluestore_block_create)

Daemons run as the ceph user in the foreground (``-d``: logs on stderr, into
$LOGDIR/<daemon>.log) under minstack's supervisor.  Every listener is on 127.0.0.1:
the mon on the catalogue's two ports (v2, v1), the mgr and the OSD in 6800-7300.
Pools have one replica (one OSD).  Measured on the CI host: HEALTH_OK ~17 s from
nothing, ~230 MiB PSS at rest (mon 30, mgr 140, OSD 45-90).

Keys never reach a command line: ceph-authtool generates them into files, ``osd new``
reads the OSD's secret from a file, clients' keyrings are exported with ``-o``.
/etc/ceph/ceph.conf (no secret, 0644), the admin keyring (root 0600) and the clients'
keyrings (root:<stack user> 0640) are where every Ceph tool looks first, so ``ceph -s``
and ``rbd ls volumes`` work for root as they are.  A /etc/ceph/ceph.conf minstack did not
write (another cluster's) is never touched: the phase stops and says so.
"""
from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from minstack import catalogue
from minstack.context import Wanted
from minstack.errors import MinstackError
from minstack.phase import Phase, Step
from minstack.settings import format_size
from minstack.supervisor import Daemon

CLUSTER = "ceph"
ETC = Path("/etc/ceph")
CONF = ETC / f"{CLUSTER}.conf"
MARKER = "# Written by minstack (phases/ceph.py)"
ADMIN = "client.admin"
USER = "ceph"                      # the Debian packages' system user
MON_ID, MGR_ID, OSD_ID = "a", "x", 0
PG_NUM = 8                         # per pool at creation (the autoscaler is off: ceph.conf.j2)

SHIPPED_MODULES = Path("/usr/share/ceph/mgr")
# Pacific's always-on mgr modules: they cannot be disabled, and one missing is HEALTH_ERR
# ("Module 'balancer' has failed: Not found or unloadable"); the two files they all import.
ALWAYS_ON_MODULES = ("balancer", "crash", "devicehealth", "orchestrator", "pg_autoscaler", "progress",
                     "rbd_support", "status", "telemetry", "volumes")
MODULE_LIBRARIES = ("mgr_module.py", "mgr_util.py")

CLIENT = "cinder"                  # the one client key: cinder-volume, cinder-backup (and nova's attach)
# DevStack's pools: volumes for c-vol, backups for c-bak
VOLUMES, BACKUPS = "volumes", "backups"
POOLS = {VOLUMES: ("c-vol",), BACKUPS: ("c-bak",)}

MON = "ceph-mon"
MGR = "ceph-mgr"
OSD = "ceph-osd"


# ---- pure logic (unit-tested) --------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Where the cluster lives: $DATA_DIR/ceph."""

    root: Path

    @property
    def fsid_file(self) -> Path:
        return self.root / "fsid"

    @property
    def mon(self) -> Path:
        return self.root / "mon" / f"{CLUSTER}-{MON_ID}"

    @property
    def mgr(self) -> Path:
        return self.root / "mgr" / f"{CLUSTER}-{MGR_ID}"

    @property
    def osd(self) -> Path:
        return self.root / "osd" / f"{CLUSTER}-{OSD_ID}"

    @property
    def block(self) -> Path:
        return self.root / "osd" / f"{CLUSTER}-{OSD_ID}.block"

    @property
    def modules(self) -> Path:
        return self.root / "mgr-modules"

    @property
    def ceph_dirs(self) -> tuple[Path, ...]:
        """Directories the ceph user writes."""
        return (self.root / "mon", self.root / "mgr", self.root / "osd", self.root / "run", self.root / "crash")


def layout(settings) -> Layout:
    return Layout(settings.data_dir / "ceph")


def mon_addrs() -> str:
    """The mon's address vector: msgr2 and msgr1, on loopback (catalogue ports)."""
    ports = catalogue.ports()
    return f"[v2:127.0.0.1:{ports['ceph-mon']},v1:127.0.0.1:{ports['ceph-mon-v1']}]"


def keyring_path(entity: str) -> Path:
    """Where every Ceph client looks for an entity's keyring: /etc/ceph/ceph.<entity>.keyring."""
    return ETC / f"{CLUSTER}.{entity}.keyring"


def key_in(keyring_text: str) -> str:
    """The secret a keyring file holds (ceph-authtool's format: ``key = AQ...==``)."""
    found = re.search(r"^\s*key\s*=\s*(\S+)\s*$", keyring_text, re.MULTILINE)
    if not found:
        raise ValueError("no key in keyring")
    return found.group(1)


def osd_new_request(key: str) -> bytes:
    """What ``ceph osd new UUID ID -i FILE`` reads: the OSD's cephx secret (vstart.sh's new.json)."""
    return json.dumps({"cephx_secret": key}).encode()


def wanted_pools(settings) -> list[str]:
    return [pool for pool, services in POOLS.items() if settings.is_enabled(*services)]


def client_caps(pools: list[str]) -> dict[str, str]:
    """The cinder client's capabilities: rbd on its pools (the mgr's for rbd_support's tasks)."""
    on_pools = ", ".join(f"profile rbd pool={pool}" for pool in pools)
    return {"mon": "profile rbd", "osd": on_pools, "mgr": on_pools}


def caps_args(caps: dict[str, str]) -> list[str]:
    return [word for kind in sorted(caps) for word in (kind, caps[kind])]


def module_links(shipped: Path = SHIPPED_MODULES) -> dict[str, Path]:
    """The mgr's module directory: name -> what it links to."""
    return {name: shipped / name for name in (*MODULE_LIBRARIES, *ALWAYS_ON_MODULES)}


def link_differences(directory: Path, links: dict[str, Path]) -> list[str]:
    """Names in directory that are missing, wrong, or should not be there."""
    differ = [name for name, target in links.items()
              if not (directory / name).is_symlink() or os.readlink(directory / name) != str(target)]
    if directory.is_dir():
        differ += sorted(p.name for p in directory.iterdir() if p.name not in links)
    return differ


def not_ready(status: dict) -> list[str]:
    """Why a cluster is not usable yet, from ``ceph status -f json`` (empty: it is).

    HEALTH_OK alone says little: a fresh cluster is HEALTH_OK with no OSD up at all.
    """
    reasons = []
    health = status.get("health", {}).get("status")
    if health != "HEALTH_OK":
        reasons.append(f"health {health}: {', '.join(status.get('health', {}).get('checks', {})) or '?'}")
    if status.get("osdmap", {}).get("num_up_osds", 0) < 1:
        reasons.append("no OSD up")
    if not status.get("mgrmap", {}).get("available"):
        reasons.append("no mgr available")
    states = {s["state_name"]: s["count"] for s in status.get("pgmap", {}).get("pgs_by_state", [])}
    # active+clean+scrubbing (and +snaptrim) serve I/O: a scrub on a stacked host is no reason to act
    unclean = {name: count for name, count in states.items() if not name.startswith("active+clean")}
    if unclean:
        reasons.append("PGs " + ", ".join(f"{count} {name}" for name, count in sorted(unclean.items())))
    return reasons


def secret_uuid(fsid: str) -> str:
    """The libvirt secret Nova attaches volumes with (rbd_secret_uuid): stable for a cluster."""
    return str(uuid.uuid5(uuid.UUID(fsid), f"client.{CLIENT}"))


def is_ours(conf: Path | None = None) -> bool:
    conf = conf or CONF
    try:
        return conf.read_text().startswith(MARKER)
    except FileNotFoundError:
        return False


def fsid(settings) -> str:
    return layout(settings).fsid_file.read_text().strip()


# ---- the phase -----------------------------------------------------------------------------------
class Ceph(Phase):
    def daemons(self, ctx):
        s = ctx.settings

        def cli_json(*args: str) -> dict:
            return query(ctx, *args) or {}

        def daemon(name: str, binary: str, ident: str, ready, unit_alias: bool = False, **more) -> Daemon:
            return Daemon(name, [binary, "-d", "--cluster", CLUSTER, "-c", str(CONF), "-i", ident], user=USER,
                          service="ceph", unit_alias=unit_alias, ready=ready, ready_timeout=s.service_timeout,
                          **more)

        # three daemons, one service: minstack-ceph.service (systemd) is the mon's alias, as
        # minstack-rabbit is RabbitMQ's and not epmd's.  The mon also retires Debian's ceph-crash.service,
        # which ceph-base enables and starts on a systemd host: a crash collector with no key of its
        # own in this cluster (and a Python process at rest), next to a cluster that has none.
        return [
            daemon(MON, "/usr/bin/ceph-mon", MON_ID, lambda: bool(cli_json("quorum_status").get("quorum_names")),
                   unit_alias=True, distro_units=("ceph-crash.service",)),
            daemon(MGR, "/usr/bin/ceph-mgr", MGR_ID, lambda: bool(cli_json("mgr", "stat").get("available"))),
            daemon(OSD, "/usr/bin/ceph-osd", str(OSD_ID),
                   lambda: cli_json("osd", "stat").get("num_up_osds", 0) >= 1),
        ]

    def steps(self, ctx):
        s = ctx.settings
        lay = layout(s)
        mon, mgr, osd = self.daemons(ctx)
        pools = wanted_pools(s)
        return [
            Step("no other cluster", lambda: refuse_foreign_conf(),
                 f"{CONF} is minstack's or absent (another cluster's is never touched)",
                 check=lambda: is_ours() or not CONF.exists()),
            ctx.files_step("directories", f"{lay.root}: mon, mgr, osd, run, crash owned by {USER}",
                           lambda: directories(ctx, lay)),
            Step("fsid", lambda: write_fsid(lay), f"the cluster's id in {lay.fsid_file}",
                 check=lay.fsid_file.exists),
            ctx.files_step("config", f"{CONF}: one mon on {mon_addrs()}, one OSD on {lay.block} "
                                     f"({format_size(s.ceph_loopback_disk_size)} sparse, "
                                     "CEPH_LOOPBACK_DISK_SIZE), pools of one replica",
                           lambda: [config(ctx, lay)]),
            Step("mgr modules", lambda differ: link_modules(ctx, lay), f"{lay.modules}: the always-on modules only",
                 observe=lambda: link_differences(lay.modules, module_links())),
            Step("monitor", lambda: create_monitor(ctx, lay), f"keys, monmap, ceph-mon --mkfs in {lay.mon}",
                 check=lambda: (lay.mon / "store.db").is_dir()),
            ctx.start_step(mon, f"ceph-mon.{MON_ID} on {mon_addrs()}"),
            ctx.start_step(mgr, f"ceph-mgr.{MGR_ID}"),
            Step("osd", lambda: create_osd(ctx, lay), f"ceph osd new + ceph-osd --mkfs: BlueStore on {lay.block}",
                 check=lambda: (lay.osd / "ready").exists()),
            ctx.start_step(osd, f"ceph-osd.{OSD_ID}"),
            Step("pools", lambda missing: create_pools(ctx, missing), f"rbd pools {', '.join(pools)}",
                 observe=lambda: missing_pools(ctx, pools)),
            Step("client key", lambda differ: ensure_client(ctx, pools, differ),
                 f"client.{CLIENT} (rbd on {', '.join(pools)}) in {keyring_path('client.' + CLIENT)}, "
                 f"root:{s.stack_user} 0640", observe=lambda: client_differs(ctx, pools)),
            Step("healthy", lambda reasons: wait_healthy(ctx), "HEALTH_OK, the OSD up, every PG active+clean",
                 observe=lambda: cluster_not_ready(ctx)),
        ]

    def summary(self, settings):
        return [("Ceph", f"1 mon, 1 mgr, 1 OSD ({layout(settings).block}); `ceph -s`, `rbd ls volumes`")]

    def clean(self, ctx):
        """The cluster (mon store, OSD and its block file), its config and keys; the daemons are
        stopped already.  Nothing of a /etc/ceph/ceph.conf minstack did not write."""
        ctx.remove_trees(layout(ctx.settings).root)
        if is_ours():
            ctx.remove_files(CONF, keyring_path(ADMIN), keyring_path(f"client.{CLIENT}"))


# ---- steps ---------------------------------------------------------------------------------------
def query(ctx, *args: str):
    """A read-only question to the cluster, its JSON answer; None when nothing answers (no ceph CLI
    yet, no config, no mon running): a probe must not fail or hang where the cluster is not made yet
    (``./stack.py plan`` on a fresh host).  The output stays out of the log: it may hold a key."""
    if shutil.which("ceph") is None or not CONF.exists():
        return None
    result = ctx.sh.run(["ceph", "--connect-timeout", "5", *args, "-f", "json"], check=False, quiet=True,
                        timeout=30)
    if not result.ok or not result.stdout.strip():
        return None
    return json.loads(result.stdout)


def refuse_foreign_conf() -> None:
    raise MinstackError(f"{CONF} exists and was not written by minstack (another Ceph cluster?); "
                        "minstack will not replace it: move it away, or disable c-vol and c-bak")


def directories(ctx, lay: Layout) -> list:
    wanted = [ctx.directory(ETC), ctx.directory(lay.root, mode=0o755)]
    wanted += [ctx.directory(path, owner=USER, mode=0o750) for path in lay.ceph_dirs]
    wanted += [ctx.directory(lay.mgr, owner=USER, mode=0o750),
               # read by the ceph user: a 0750 root directory made ceph-mgr abort at start
               ctx.directory(lay.modules, mode=0o755)]
    # the ceph user walks down to its directories ($DEST is the stack user's home)
    for parent in reversed(lay.root.parents):
        if parent.exists() and parent.stat().st_mode & 0o001 == 0:
            st = parent.stat()
            wanted.insert(0, Wanted(parent, None, (st.st_mode & 0o7777) | 0o001,
                                    pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name))
    return wanted


def write_fsid(lay: Layout) -> None:
    lay.fsid_file.write_text(f"{uuid.uuid4()}\n")
    lay.fsid_file.chmod(0o644)


def config(ctx, lay: Layout):
    return ctx.template("ceph/ceph.conf.j2", CONF, restarts=(MON, MGR, OSD), marker=MARKER,
                        fsid=lay.fsid_file.read_text().strip() if lay.fsid_file.exists() else "(not yet made)",
                        mon_addrs=mon_addrs(), data=lay.root, block_size=ctx.settings.ceph_loopback_disk_size)


def link_modules(ctx, lay: Layout) -> None:
    links = module_links()
    for path in lay.modules.iterdir():
        if path.name not in links or not path.is_symlink() or os.readlink(path) != str(links[path.name]):
            path.unlink() if path.is_symlink() or path.is_file() else shutil.rmtree(path)
    for name, target in links.items():
        if not (lay.modules / name).is_symlink():
            if not target.exists():
                raise MinstackError(f"{target} is missing: is ceph-mgr-modules-core installed?")
            (lay.modules / name).symlink_to(target)
    ctx.restart.add(MGR)


def authtool(ctx, keyring: Path, entity: str, caps: dict[str, str], create: bool = True) -> None:
    """A new key for entity, generated into keyring by ceph-authtool (never on a command line)."""
    argv = ["ceph-authtool", *(["--create-keyring"] if create else []), "--gen-key", "-n", entity]
    for kind, cap in caps.items():
        argv += ["--cap", kind, cap]
    ctx.sh.run([*argv, str(keyring)])
    keyring.chmod(0o600)


def create_monitor(ctx, lay: Layout) -> None:
    """Keys for mon., client.admin and mgr.x, the monmap, and the mon's store (vstart.sh's start_mon)."""
    admin = keyring_path(ADMIN)
    if lay.mon.exists() and any(lay.mon.iterdir()):
        raise MinstackError(f"{lay.mon} holds a half-made monitor; ./unstack.py --clean removes it")
    work = lay.root / "mkfs"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700)
    try:
        mon_keyring, monmap = work / "mon.keyring", work / "monmap"
        authtool(ctx, mon_keyring, "mon.", {"mon": "allow *"})
        authtool(ctx, admin, ADMIN, {"mon": "allow *", "osd": "allow *", "mgr": "allow *", "mds": "allow *"})
        mgr_keyring = lay.mgr / "keyring"
        authtool(ctx, mgr_keyring, f"mgr.{MGR_ID}", {"mon": "allow profile mgr", "osd": "allow *",
                                                    "mds": "allow *"})
        shutil.chown(mgr_keyring, USER, USER)
        # the mon starts knowing the admin's and the mgr's keys: no `auth add` before it answers
        for keyring in (admin, mgr_keyring):
            ctx.sh.run(["ceph-authtool", str(mon_keyring), "--import-keyring", str(keyring)])
        ctx.sh.run(["monmaptool", "--create", "--fsid", fsid(ctx.settings), "--addv", MON_ID, mon_addrs(),
                    str(monmap)])
        for path in (work, mon_keyring, monmap):
            shutil.chown(path, USER, USER)
        ctx.sh.run(["ceph-mon", "--cluster", CLUSTER, "-c", str(CONF), "-i", MON_ID, "--mkfs",
                    "--monmap", str(monmap), "--keyring", str(mon_keyring)], user=USER)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the mon keeps its own keyring in its store


def create_osd(ctx, lay: Layout) -> None:
    """One OSD the way vstart.sh adds one: ``osd new`` with its key, then ``ceph-osd --mkfs``
    (which creates the sparse block file).  A half-made OSD of an earlier run is removed first."""
    if query(ctx, "osd", "ls"):
        ctx.sh.run(["ceph", "osd", "purge", str(OSD_ID), "--yes-i-really-mean-it"])
    shutil.rmtree(lay.osd, ignore_errors=True)
    lay.block.unlink(missing_ok=True)
    lay.osd.mkdir(mode=0o750)
    keyring = lay.osd / "keyring"
    authtool(ctx, keyring, f"osd.{OSD_ID}", {})
    request = lay.osd / "new.json"
    fd = os.open(request, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(osd_new_request(key_in(keyring.read_text())))
    osd_uuid = str(uuid.uuid4())
    try:
        ctx.sh.run(["ceph", "osd", "new", osd_uuid, str(OSD_ID), "-i", str(request)])
    finally:
        request.unlink()
    for path in (lay.osd, keyring):
        shutil.chown(path, USER, USER)
    ctx.sh.run(["ceph-osd", "--cluster", CLUSTER, "-c", str(CONF), "-i", str(OSD_ID), "--mkfs",
                "--osd-uuid", osd_uuid], user=USER)


def missing_pools(ctx, pools: list[str]) -> list[str]:
    have = query(ctx, "osd", "pool", "ls") or []
    return [pool for pool in pools if pool not in have]


def create_pools(ctx, missing: list[str]) -> None:
    for pool in missing:
        ctx.sh.run(["ceph", "osd", "pool", "create", pool, str(PG_NUM)])
        ctx.sh.run(["ceph", "osd", "pool", "application", "enable", pool, "rbd"])
        ctx.sh.run(["rbd", "pool", "init", pool])


def client_differs(ctx, pools: list[str]) -> list[str]:
    """What differs for the client key: the entity, its caps, the keyring file, its owner and mode."""
    entity = f"client.{CLIENT}"
    got = query(ctx, "auth", "get", entity)  # holds the key: quiet
    if not got:
        return ["missing"]
    [found] = got
    differs = [] if found.get("caps") == client_caps(pools) else ["caps"]
    path = keyring_path(entity)
    try:
        if key_in(path.read_text()) != found["key"]:
            differs.append("keyring")
        st = path.stat()
        if st.st_mode & 0o7777 != 0o640 or st.st_gid != _gid(ctx.settings.stack_user) or st.st_uid != 0:
            differs.append("keyring mode")
    except (FileNotFoundError, ValueError):
        differs.append("keyring")
    return differs


def ensure_client(ctx, pools: list[str], differs: list[str]) -> None:
    entity = f"client.{CLIENT}"
    caps = caps_args(client_caps(pools))
    path = keyring_path(entity)
    if "missing" in differs:
        ctx.sh.run(["ceph", "auth", "get-or-create", entity, *caps, "-o", str(path)])
    elif "caps" in differs:
        ctx.sh.run(["ceph", "auth", "caps", entity, *caps])
    ctx.sh.run(["ceph", "auth", "get", entity, "-o", str(path)])  # the key goes into the file, not the log
    os.chown(path, 0, _gid(ctx.settings.stack_user))
    path.chmod(0o640)


def _gid(group: str) -> int:
    return grp.getgrnam(group).gr_gid


def cluster_not_ready(ctx) -> list[str]:
    return not_ready(query(ctx, "status") or {})


def wait_healthy(ctx) -> None:
    """Poll until the cluster is usable (PG states reach the mgr every 5 s: ~10 s on a fresh cluster)."""
    deadline = time.monotonic() + ctx.settings.service_timeout
    while reasons := cluster_not_ready(ctx):
        if time.monotonic() > deadline:
            raise MinstackError(f"Ceph is not healthy after {ctx.settings.service_timeout}s: {'; '.join(reasons)} "
                                "(ceph -s; $LOGDIR/ceph-mon.log, ceph-osd.log)")
        time.sleep(1)


# Packages first; the daemons' data lives under $DATA_DIR (made by prereqs).  The mgr and the OSD
# need the mon: ./unstack.py stops the OSD, then the mgr, then the mon (as RabbitMQ before epmd).
PHASE = Ceph(name="ceph", requires=("packages", "prereqs"), services=("c-vol", "c-bak"), debs=("ceph",),
             stop_in_reverse_order=True)
