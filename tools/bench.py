#!/usr/bin/env python3
"""minstack's benchmark: wall time per phase and in total for a cold, a warm and a no-op stack,
the memory of the whole cloud at steady state (PSS of every daemon's process tree and of the
guests' qemu, so shared pages count once; RSS summed too, for comparison), and the test
instance's boot times.

    sudo ./tools/bench.py [--config tests/functional/localrc] [--skip-cold] [--settle 30]
    sudo ./tools/bench.py --measure-only     the memory of the cloud stacked now (no stack run)

cold  = after ./unstack.py --clean with minstack's download caches emptied (the uv wheel cache
        and files/cache); distro packages stay installed, as they are the OS packages minstack needs.
warm  = after ./unstack.py --clean, caches kept.
no-op = ./stack.py again on the stacked host.
Memory is also given per project (Nova, Swift, Heat, a plugin's, MariaDB, ...): PSS adds up, so
each share is what that project's daemons cost in this cloud, with the libraries they share
with other projects counted in proportion.
It stacks this host for real (root), prints a table and a JSON object, and leaves the host stacked.
Targets on a 2-core host (issue 7): cold <= 360 s, warm <= 120 s, no-op <= 20 s, RSS <= 2.5 GB,
ACTIVE -> SSH <= 30 s.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UV_CACHE = Path("/var/cache/minstack/uv")
IMAGE_CACHE = REPO / "files" / "cache"
TARGETS = {"cold": 360, "warm": 120, "noop": 20, "memory_mb": 2560, "active_to_ssh": 30}


def minstack(script: str, config: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / script), "--config", config, *args],
                          capture_output=True, text=True)


def load_settings(config: str):
    sys.path.insert(0, str(REPO))
    from minstack.cli import load_config
    return load_config(config)


def timed_stack(config: str, settings, label: str) -> dict:
    started = time.monotonic()
    proc = minstack("stack.py", config)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"bench: the {label} stack failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
    state = json.loads((settings.state_dir / "state.json").read_text())
    return {"wall_seconds": round(wall, 1), "phases": state["last_run"].get("phases", {})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "tests" / "functional" / "localrc"))
    parser.add_argument("--skip-cold", action="store_true", help="keep the download caches (no cold run)")
    parser.add_argument("--settle", type=float, default=30, help="seconds to wait before measuring RSS")
    parser.add_argument("--measure-only", action="store_true", help="measure the cloud stacked now; stack nothing")
    args = parser.parse_args()
    settings = load_settings(args.config)
    runs: dict[str, dict] = {}
    kinds = ["warm", "noop"] if args.skip_cold else ["cold", "warm", "noop"]
    if args.measure_only:
        kinds, args.settle = [], 0
    for kind in kinds:
        if kind in ("cold", "warm"):
            if minstack("unstack.py", args.config, "--clean").returncode != 0:
                sys.exit("bench: ./unstack.py --clean failed")
        if kind == "cold":
            for cache in (UV_CACHE, IMAGE_CACHE):
                shutil.rmtree(cache, ignore_errors=True)
        print(f"bench: {kind} stack …", file=sys.stderr, flush=True)
        runs[kind] = timed_stack(args.config, settings, kind)
        print(f"bench: {kind}: {json.dumps(runs[kind])}", file=sys.stderr, flush=True)  # kept if a later step fails
    time.sleep(args.settle)
    status = json.loads(minstack("stack.py", args.config, "status", "--json").stdout)
    rss_mb = sum(d["rss_bytes"] for d in status) / 2**20
    guests = guest_pss_bytes()
    pss_mb = (sum(d["pss_bytes"] for d in status) + guests) / 2**20
    verify = settings.state_dir / "verify.json"
    boot = json.loads(verify.read_text()) if verify.exists() else {}
    result = {
        "runs": runs,
        "rss_mb": round(rss_mb),
        "pss_mb": round(pss_mb),     # every daemon's process tree plus the guests' qemu, shared pages once
        "guests_pss_mb": round(guests / 2**20),
        "daemons": {d["name"]: round(d["rss_bytes"] / 2**20) for d in status},
        "daemons_pss": {d["name"]: round(d["pss_bytes"] / 2**20) for d in status},
        "projects_pss": pss_by_project(status),
        "boot": boot,
        "targets": TARGETS,
    }
    print_table(result)
    print(json.dumps(result, indent=1))
    return 0


def pss_by_project(status: list[dict]) -> dict[str, int]:
    """MiB of PSS per catalogue project (a base service without one under its service's name),
    largest first."""
    from minstack import catalogue
    found: dict[str, float] = {}
    for d in status:
        try:
            name = catalogue.project_of_service(d["service"]).name
        except KeyError:
            name = d["service"] or d["name"]
        found[name] = found.get(name, 0) + d["pss_bytes"] / 2**20
    return {name: round(mib) for name, mib in sorted(found.items(), key=lambda kv: -kv[1])}


def guest_pss_bytes() -> int:
    """The PSS of Nova's guests: the qemu processes libvirt started (they are not its children)."""
    import psutil
    from minstack.supervisor import proportional_set_size
    return sum(proportional_set_size(p) for p in psutil.process_iter(["name", "cmdline"])
               if (p.info["name"] or "").startswith("qemu-system")
               and any("guest=instance-" in arg for arg in p.info["cmdline"] or []))


def print_table(result: dict) -> None:
    runs = result["runs"]
    phases = sorted({p for r in runs.values() for p in r["phases"]},
                    key=lambda p: -max(r["phases"].get(p, 0) for r in runs.values()))
    kinds = list(runs)
    print(f"{'phase':<14}" + "".join(f"{k:>10}" for k in kinds))
    for phase in phases:
        print(f"{phase:<14}" + "".join(f"{runs[k]['phases'].get(phase, 0):>10.1f}" for k in kinds))
    print(f"{'TOTAL (wall)':<14}" + "".join(f"{runs[k]['wall_seconds']:>10.1f}" for k in kinds))
    print(f"memory of the whole cloud after settling: PSS {result['pss_mb']} MiB (guests "
          f"{result['guests_pss_mb']} MiB; target {TARGETS['memory_mb']}), RSS of the daemons {result['rss_mb']} MiB")
    print("PSS per project (MiB): " + ", ".join(f"{n} {m}" for n, m in result["projects_pss"].items()))
    boot = result["boot"]
    if boot:
        print(f"test instance: ACTIVE after {boot.get('active_seconds')} s, login prompt after "
              f"{boot.get('marker_seconds')} s, SSH after {boot.get('ssh_seconds', 'n/a')} s")


if __name__ == "__main__":
    sys.exit(main())
