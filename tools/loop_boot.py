#!/usr/bin/env python3
"""Looping VM launching: boot and delete N instances one after another on a stacked host and
report successes, failures and times.

    sudo ./tools/loop_boot.py 10 [--config tests/functional/localrc] [--json]

Each round, as the demo user: boot `minstack-loop-<i>` (the verify phase's image and flavor, the
private network), wait for ACTIVE and for the image's console login marker, delete it, wait until
it is gone. A round that fails is counted, its server removed, and the loop goes on.
Exit code 0 only when every round succeeded.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def one_round(conn, i: int, image, flavor, network, marker: str, timeout: float) -> dict:
    name = f"minstack-loop-{i}"
    started = time.monotonic()
    server = conn.compute.create_server(name=name, image_id=image.id, flavor_id=flavor.id,
                                        networks=[{"uuid": network.id}])
    result = {"round": i, "ok": False}
    try:
        server = conn.compute.wait_for_server(server, status="ACTIVE", failures=["ERROR"], interval=1,
                                              wait=timeout)
        result["active_s"] = round(time.monotonic() - started, 1)
        deadline = time.monotonic() + timeout
        while marker not in (conn.compute.get_server_console_output(server).get("output") or ""):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {marker!r} on the console after {timeout:.0f}s")
            time.sleep(1)
        result["booted_s"] = round(time.monotonic() - started, 1)
        result["ok"] = True
    except Exception as exc:  # counted, reported, and the loop goes on
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        deleting = time.monotonic()
        conn.compute.delete_server(server)
        conn.compute.wait_for_delete(server, interval=1, wait=timeout)
        result["delete_s"] = round(time.monotonic() - deleting, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("count", type=int)
    parser.add_argument("--config", default=None, help="the stack's localrc (default: ./localrc)")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--json", action="store_true", help="print only the JSON summary")
    args = parser.parse_args()

    from minstack import identity, images
    from minstack.catalogue import DEMO
    from minstack.cli import load_config
    settings = load_config(args.config)
    conn = identity.user_connection(settings, DEMO.project, DEMO.project)
    meta = images.uploaded(settings)[0]
    image = conn.image.find_image(meta["name"], ignore_missing=False)
    flavor = conn.compute.find_flavor(DEMO.flavor, ignore_missing=False)
    network = conn.network.find_network(DEMO.network, ignore_missing=False)

    rounds = []
    for i in range(1, args.count + 1):
        rounds.append(one_round(conn, i, image, flavor, network, meta["marker"], args.timeout))
        if not args.json:
            r = rounds[-1]
            print(f"round {i:3d}: {'ok    ' if r['ok'] else 'FAILED'} active {r.get('active_s', '-')} s, "
                  f"booted {r.get('booted_s', '-')} s, deleted in {r.get('delete_s', '-')} s"
                  + (f"  ({r['error']})" if "error" in r else ""), flush=True)
    ok = [r for r in rounds if r["ok"]]
    summary = {
        "rounds": len(rounds), "successes": len(ok), "failures": len(rounds) - len(ok),
        "active_s_median": statistics.median(r["active_s"] for r in ok) if ok else None,
        "booted_s_median": statistics.median(r["booted_s"] for r in ok) if ok else None,
        "booted_s_max": max(r["booted_s"] for r in ok) if ok else None,
        "details": rounds,
    }
    print(json.dumps(summary, indent=1))
    return 0 if summary["failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
