"""Prove the cloud works: boot an instance of the test image on the private network,
wait for ACTIVE, then for the image's login marker on its console.

The instance (``minstack-verify``, in the demo project) is kept for the user
unless VERIFY_KEEP_INSTANCE=False.  ``./stack.py --only verify`` re-runs the check.
"""
from __future__ import annotations

import json
import time

from minstack import identity, images
from minstack.errors import MinstackError
from minstack.phase import Phase, Step

SERVER = "minstack-verify"
FLAVOR = "cirros256"
NETWORK = "private"


def result_file(settings):
    return settings.state_dir / "verify.json"


def console_marker_seen(conn, server, marker: str) -> tuple[bool, str]:
    text = conn.compute.get_server_console_output(server).get("output", "") or ""
    return marker in text, text


class VerifyFailed(MinstackError):
    pass


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
            """The instance from an earlier run is still ACTIVE and showed its marker."""
            conn = identity.user_connection(s, "demo", "demo")
            server = conn.compute.find_server(SERVER)
            if server is None or server.status != "ACTIVE" or not s.verify_keep_instance:
                return False
            return console_marker_seen(conn, server, image()["marker"])[0]

        def boot():
            conn = identity.user_connection(s, "demo", "demo")
            meta = image()
            old = conn.compute.find_server(SERVER)
            if old is not None:  # left from an earlier run but not healthy: start over
                ctx.log.info("deleting the earlier %s (status %s)", SERVER, old.status)
                conn.compute.delete_server(old)
                conn.compute.wait_for_delete(old, wait=180)
            glance_image = conn.image.find_image(meta["name"], ignore_missing=False)
            flavor = conn.compute.find_flavor(FLAVOR, ignore_missing=False)
            network = conn.network.find_network(NETWORK, ignore_missing=False)
            started = time.monotonic()
            server = conn.compute.create_server(name=SERVER, image_id=glance_image.id, flavor_id=flavor.id,
                                                networks=[{"uuid": network.id}])
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
            fixed_ips = [a["addr"] for net in server.addresses.values() for a in net]
            record = {"server": SERVER, "image": meta["name"], "fixed_ips": fixed_ips,
                      "active_seconds": round(active, 1), "marker_seconds": round(marker, 1)}
            ctx.write_file(result_file(s), json.dumps(record, indent=1) + "\n", mode=0o644)
            ctx.log.info("verified: %s", record)
            if not s.verify_keep_instance:
                conn.compute.delete_server(server)

        return [Step("boot", boot, f"boot {SERVER} ({FLAVOR}, network {NETWORK}) and wait for its console "
                                   "login marker", check=healthy)]

    def summary(self, settings):
        path = result_file(settings)
        if not path.exists():
            return []
        r = json.loads(path.read_text())
        return [("test instance", f"{r['server']} ({r['image']}) at {', '.join(r['fixed_ips'])}: ACTIVE after "
                                  f"{r['active_seconds']} s, login prompt after {r['marker_seconds']} s")]


PHASE = Verify(name="verify", requires=("nova", "network", "image"), services=("n-cpu",))
