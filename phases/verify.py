"""Prove the cloud works: boot an instance of the test image on the private network,
wait for ACTIVE, then for the image's login marker on its console; give it a
floating IP and wait until it answers ping and SSH from this host.

The instance (``minstack-verify``, in the demo project) is kept for the user
unless VERIFY_KEEP_INSTANCE=False.  Every ./stack.py run re-checks that it
answers; ``./stack.py verify`` runs just that check.
"""
from __future__ import annotations

import json
import time

from minstack import identity, images
from minstack.catalogue import DEMO
from minstack.ssh import ssh_command
from minstack.errors import MinstackError
from minstack.phase import Phase, Step

SERVER = "minstack-verify"
FLAVOR = DEMO.flavor
NETWORK = DEMO.network
PUBLIC = DEMO.public_network
KEYPAIR = DEMO.keypair


def result_file(settings):
    return settings.state_dir / "verify.json"


def console_marker_seen(conn, server, marker: str) -> tuple[bool, str]:
    text = conn.compute.get_server_console_output(server).get("output", "") or ""
    return marker in text, text


class VerifyFailed(MinstackError):
    pass


def wait_for(probe, seconds: float, interval: float = 1.0) -> float | None:
    """Seconds until probe() was true, or None if it never was within seconds."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if probe():
            return time.monotonic() - started
        time.sleep(interval)
    return None


def floating_ip(conn, server) -> str:
    """The server's floating IP on the public network, allocated and attached once."""
    port = next(conn.network.ports(device_id=server.id))
    existing = list(conn.network.ips(port_id=port.id))
    if existing:
        return existing[0].floating_ip_address
    public = conn.network.find_network(PUBLIC, ignore_missing=False)
    return conn.network.create_ip(floating_network_id=public.id, port_id=port.id).floating_ip_address


def diagnose(ctx, conn, server, fip: str, what: str) -> str:
    """What was checked last, for the failure report: console tail, port, router and NAT state."""
    lines = [f"{SERVER} at {fip} {what}."]
    console = (conn.compute.get_server_console_output(server).get("output") or "").splitlines()[-15:]
    lines.append("console (last lines):\n    " + "\n    ".join(console))
    for port in conn.network.ports(device_id=server.id):
        lines.append(f"port {port.id}: status {port.status}, fixed {port.fixed_ips}, "
                     f"binding {port.binding_vif_type} on {port.binding_host_id}")
    for router in conn.network.routers():
        lines.append(f"router {router.name}: status {router.status}, gateway "
                     f"{(router.external_gateway_info or {}).get('external_fixed_ips')}")
    routes = ctx.sh.run(["ip", "route", "get", fip], check=False, quiet=True)
    lines.append(f"host route to {fip}: {routes.stdout.strip() or routes.stderr.strip()}")
    return "\n".join(lines)


class Verify(Phase):
    def steps(self, ctx):
        s = ctx.settings
        console_log = s.logdir / "verify-console.log"

        def image() -> dict:
            """The first bootable image the image phase uploaded: its name and console marker."""
            listed = images.uploaded(s)
            if not listed:
                raise VerifyFailed("no bootable image was uploaded (see phases/image.log)")
            return listed[0]

        def healthy() -> bool:
            """The instance from an earlier run is ACTIVE and shows its marker (a guest that
            nova-compute has just powered on again gets the time to boot)."""
            conn = identity.user_connection(s, "demo", "demo")
            server = conn.compute.find_server(SERVER)
            if server is None or server.status != "ACTIVE" or not s.verify_keep_instance:
                return False
            return wait_for(lambda: console_marker_seen(conn, server, image()["marker"])[0], 180) is not None

        def boot():
            conn = identity.user_connection(s, "demo", "demo")
            meta = image()
            old = conn.compute.find_server(SERVER)
            if old is not None and old.status == "SHUTOFF":  # powered off (e.g. by hand): power it on
                ctx.log.info("starting the earlier %s", SERVER)
                conn.compute.start_server(old)
                conn.compute.wait_for_server(old, status="ACTIVE", failures=["ERROR"], wait=180)
                if wait_for(lambda: console_marker_seen(conn, old, meta["marker"])[0], 180) is not None:
                    return
            if old is not None:  # left from an earlier run but broken: start over
                ctx.log.info("deleting the earlier %s (status %s)", SERVER, old.status)
                conn.compute.delete_server(old)
                conn.compute.wait_for_delete(old, wait=180)
            glance_image = conn.image.find_image(meta["name"], ignore_missing=False)
            flavor = conn.compute.find_flavor(FLAVOR, ignore_missing=False)
            network = conn.network.find_network(NETWORK, ignore_missing=False)
            started = time.monotonic()
            server = conn.compute.create_server(name=SERVER, image_id=glance_image.id, flavor_id=flavor.id,
                                                networks=[{"uuid": network.id}], key_name=KEYPAIR)
            try:
                server = conn.compute.wait_for_server(server, status="ACTIVE", failures=["ERROR"],
                                                      interval=1, wait=s.service_timeout * 3)
            except Exception as exc:
                fault = getattr(conn.compute.get_server(server.id), "fault", None)
                raise VerifyFailed(f"{SERVER} did not become ACTIVE: {fault or exc}") from exc
            active = time.monotonic() - started
            deadline = time.monotonic() + 300
            text = ""
            while time.monotonic() < deadline:
                seen, text = console_marker_seen(conn, server, meta["marker"])
                if seen:
                    break
                time.sleep(2)
            console_log.write_text(text)
            marker = time.monotonic() - started
            if meta["marker"] not in text:
                raise VerifyFailed(f"{SERVER} is ACTIVE but its console never showed {meta['marker']!r} "
                                   f"within 300 s; console log: {console_log}")
            fixed_ips = [a["addr"] for net in server.addresses.values() for a in net
                         if a.get("OS-EXT-IPS:type", "fixed") == "fixed"]
            record = {"server": SERVER, "image": meta["name"], "fixed_ips": fixed_ips,
                      "active_seconds": round(active, 1), "marker_seconds": round(marker, 1),
                      "active_at": time.time() - (time.monotonic() - started) + active}
            ctx.write_file(result_file(s), json.dumps(record, indent=1) + "\n", mode=0o644)
            ctx.log.info("booted: %s", record)

        def reachable():
            conn = identity.user_connection(s, "demo", "demo")
            server = conn.compute.find_server(SERVER, ignore_missing=False)
            fip = floating_ip(conn, server)
            record = json.loads(result_file(s).read_text())
            ping_s = wait_for(lambda: ctx.sh.ok(["ping", "-c", "1", "-W", "1", fip]), 120)
            if ping_s is None:
                raise VerifyFailed(diagnose(ctx, conn, server, fip, "does not answer ping"))
            ssh = ssh_command(s, fip, "hostname")
            answer = {}

            def ssh_ok() -> bool:
                result = ctx.sh.run(ssh, check=False, quiet=True, timeout=20)
                answer["hostname"] = result.stdout.strip()
                return result.ok
            ssh_s = wait_for(ssh_ok, 120)
            if ssh_s is None:
                raise VerifyFailed(diagnose(ctx, conn, server, fip, "answers ping but not SSH"))
            if answer["hostname"].split(".")[0] != SERVER:  # nova adds its dhcp_domain: <name>.novalocal
                raise VerifyFailed(f"{SERVER} answered SSH as {answer['hostname']!r}: its hostname did not "
                                   "come from the metadata service")
            first = "ssh_seconds" not in record
            if first:  # ACTIVE -> SSH, measured once, on the boot that made the instance
                record["ssh_seconds"] = round(time.time() - record["active_at"], 1)
            record.update(floating_ip=fip, reachable="ping ok, ssh ok")
            ctx.write_file(result_file(s), json.dumps(record, indent=1) + "\n", mode=0o644)
            ctx.note(f"instance reachable: ping ok, ssh ok ({SERVER} at {fip}; booted"
                     + (" in this run" if first else " earlier") + f": ACTIVE after {record['active_seconds']} s, "
                     f"login prompt after {record['marker_seconds']} s, SSH {record['ssh_seconds']} s after ACTIVE)")
            if not s.verify_keep_instance:
                conn.compute.delete_server(server)

        return [
            Step("boot", boot, f"boot {SERVER} ({FLAVOR}, network {NETWORK}, keypair {KEYPAIR}) and wait for "
                               "its console login marker", check=healthy),
            Step("reachable", reachable, "floating IP; wait until it answers ping and SSH from this host",
                 checks_only=True),
        ]

    def summary(self, settings):
        path = result_file(settings)
        if not path.exists():
            return []
        r = json.loads(path.read_text())
        return [("test instance", f"{r['server']} ({r['image']}) at {', '.join(r['fixed_ips'])}: ACTIVE after "
                                  f"{r['active_seconds']} s, login prompt after {r['marker_seconds']} s")]


PHASE = Verify(name="verify", requires=("nova", "network", "image", "access", "hostnet"), services=("n-cpu",))
