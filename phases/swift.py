"""Swift: object storage on one node (catalogue: s-proxy, s-account, s-container, s-object).

One replica, one "device": a plain directory, $DATA_DIR/swift/drives/sdb1 (Swift
needs only xattrs; no loop device, no XFS image, mount_check off).  minstack builds
the three rings in /etc/swift; the storage servers listen on loopback (only the proxy
calls them), the proxy on SERVICE_HOST:8080 with Keystone auth (authtoken +
keystoneauth) and the object-store endpoint http://SERVICE_HOST:8080/v1/AUTH_<project>.
Every server is its own process (workers = 0) and logs to stderr (``-v``), into
$LOGDIR/<daemon>.log.  Swift also always opens a syslog handler: to /dev/log, which
these hosts lack, or else to UDP -- an unbound UDP socket that ends up open on 0.0.0.0
in every server.  So minstack gives Swift a syslog socket of its own (``log_address``),
read by ``swift-syslog``, which drops what it reads: the same lines are in the servers'
own logs already.  One exception remains: the proxy's access log (proxy-logging) takes
no log_address, so it still sends to UDP 127.0.0.1:514 from an ephemeral port (README,
"What listens where").  No replicators, auditors or
updaters: with one replica there is nothing to replicate, and the sandbox does not
need the background accounting (an account's object and byte counts lag).
"""
from __future__ import annotations

from pathlib import Path

from minstack import catalogue, identity
from minstack.apiservice import ApiService
from minstack.derived_secrets import service_key
from minstack.errors import MinstackError
from minstack.phase import Step
from minstack.probes import http_ok, tcp_open
from minstack.supervisor import Daemon

KINDS = ("account", "container", "object")
DEVICE = "sdb1"            # DevStack's name for its one device
PART_POWER, REPLICAS, MIN_PART_HOURS = 9, 1, 1
ETC = Path("/etc/swift")
RESELLER_ADMIN = "ResellerAdmin"
# swift-syslog: receives the datagrams of Swift's syslog handlers on a unix socket, and drops them
SYSLOG_SINK = """\
import os, socket, sys
path = sys.argv[1]
if os.path.exists(path):
    os.unlink(path)
sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sink.bind(path)
os.chmod(path, 0o660)
while True:
    sink.recv(65536)
"""


def server(kind: str) -> str:
    return f"swift-{kind}-server"


class Swift(ApiService):
    project = "swift"

    def data(self, settings) -> Path:
        return settings.data_dir / "swift"

    def syslog_socket(self, settings) -> Path:
        return self.data(settings) / "syslog.sock"

    def before_config(self, ctx):
        s = ctx.settings
        data = self.data(s)
        return [ctx.files_step("state dirs", f"{data}/drives/{DEVICE} and {data}/cache owned by {s.stack_user}",
                               lambda: [ctx.directory(path, owner=s.stack_user, mode=0o750) for path in
                                        (data, data / "drives", data / "drives" / DEVICE, data / "cache")])]

    def configure(self, ctx):
        s = ctx.settings
        data = self.data(s)
        ports = catalogue.ports()
        everything = ("swift-proxy-server", *(server(kind) for kind in KINDS))
        return [ctx.directory(ETC, owner="root", group=s.stack_user, mode=0o750),
                ctx.template("swift/swift.conf.j2", ETC / "swift.conf", **self.private(s), restarts=everything,
                             hash_suffix=service_key(s, "swift hash path suffix")),
                ctx.template("swift/proxy-server.conf.j2", self.conf(s), **self.private(s),
                             restarts=("swift-proxy-server",), log_address=self.syslog_socket(s)),
                *(ctx.template("swift/storage-server.conf.j2", ETC / f"{kind}-server.conf", **self.private(s),
                               restarts=(server(kind),), kind=kind, port=ports[server(kind)],
                               devices=data / "drives", cache=data / "cache", log_address=self.syslog_socket(s))
                  for kind in KINDS)]

    def after_config(self, ctx):
        s = ctx.settings
        ports = catalogue.ports()
        builder = str(s.venv / "bin" / "swift-ring-builder")

        def wanted_device(kind: str) -> str:
            return f"127.0.0.1:{ports[server(kind)]}"

        def differing() -> list[str]:
            """The rings that are missing, or whose one device is not this host's server."""
            found = []
            for kind in KINDS:
                ring, builder_file = ETC / f"{kind}.ring.gz", ETC / f"{kind}.builder"
                shown = ctx.sh.run([builder, str(builder_file)], check=False, quiet=True) \
                    if builder_file.exists() else None
                if not ring.exists() or shown is None or wanted_device(kind) not in shown.stdout \
                        or DEVICE not in shown.stdout:
                    found.append(kind)
            return found

        def build(kinds: list[str]):
            for kind in kinds:
                builder_file = str(ETC / f"{kind}.builder")
                ctx.sh.run([builder, builder_file, "create", str(PART_POWER), str(REPLICAS), str(MIN_PART_HOURS)])
                ip, port = wanted_device(kind).split(":")
                ctx.sh.run([builder, builder_file, "add", "--region", "1", "--zone", "1", "--ip", ip, "--port", port,
                            "--device", DEVICE, "--weight", "1"])
                # exit 1 is swift-ring-builder's "done, with a warning" (e.g. a single device's balance)
                result = ctx.sh.run([builder, builder_file, "rebalance"], check=False)
                if result.returncode not in (0, 1):
                    raise MinstackError(f"swift-ring-builder {builder_file} rebalance failed: {result.stderr}")
                ctx.restart.update(["swift-proxy-server", server(kind)])

        return [Step("rings", build, f"{', '.join(KINDS)} rings in {ETC}: {REPLICAS} replica, one device "
                                     f"({DEVICE}) per server on 127.0.0.1", observe=differing)]

    def extra_daemons(self, ctx):
        s = ctx.settings
        ports = catalogue.ports()
        bin_dir = s.venv / "bin"
        sink = self.syslog_socket(s)
        enabled = [f"s-{name}" for name in ("proxy", *KINDS) if s.is_enabled(f"s-{name}")]
        if not enabled:  # ./unstack.py asks every phase, Swift enabled or not
            return []
        # first: the servers find its socket when they start (without it, they fall back to UDP)
        daemons = [Daemon("swift-syslog", ["/usr/bin/python3", "-c", SYSLOG_SINK, str(sink)], user=s.stack_user,
                          service=enabled[0],
                          unit_alias=False, ready=lambda: sink.is_socket())]
        for kind in KINDS:
            if s.is_enabled(f"s-{kind}"):
                port = ports[server(kind)]
                daemons.append(Daemon(server(kind), [str(bin_dir / server(kind)), str(ETC / f"{kind}-server.conf"),
                                                     "-v"], user=s.stack_user, service=f"s-{kind}",
                                      ready=lambda port=port: tcp_open("127.0.0.1", port),
                                      ready_timeout=s.service_timeout))
        if s.is_enabled("s-proxy"):
            health = catalogue.base_url(s, "swift-proxy-server") + "/healthcheck"
            daemons.append(Daemon("swift-proxy-server", [str(bin_dir / "swift-proxy-server"), str(self.conf(s)), "-v"],
                                  user=s.stack_user, service="s-proxy", ready=lambda: http_ok(health),
                                  ready_timeout=s.service_timeout))
        return daemons

    def after_start(self, ctx):
        s = ctx.settings
        if not self.apis(s):
            return []

        # Swift's keystoneauth gives this role every account (DevStack creates it; Tempest's account
        # quota tests log in with it)
        return [Step("reseller admin role", lambda: identity.ensure_role(identity.admin_connection(s), RESELLER_ADMIN),
                     f"Keystone role {RESELLER_ADMIN}",
                     check=lambda: identity.admin_connection(s).identity.find_role(RESELLER_ADMIN) is not None)]

    def needs_database(self, settings) -> bool:
        return False

    def clean(self, ctx):
        super().clean(ctx)
        ctx.remove_trees(self.data(ctx.settings))


# After accounts: the service project exists, so parallel phases never race to create it.
PHASE = Swift(name="swift", requires=("memcached", "venv", "accounts"))
