"""The long reliability tier (tests/run-long): more re-runs, resume after a failure in an early, a
middle and a late phase, and a loop booting and deleting ten instances."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO
from minstack import identity

pytestmark = pytest.mark.long
KEEPER = "minstack-long-keeper"


def inventory(admin_conn) -> dict:
    """What a re-run must not duplicate (or lose)."""
    identity_ = admin_conn.identity
    network = admin_conn.network
    return {
        "users": sorted(u.id for u in identity_.users()),
        "projects": sorted(p.id for p in identity_.projects()),
        "endpoints": sorted(e.id for e in identity_.endpoints()),
        "networks": sorted(n.id for n in network.networks()),
        "subnets": sorted(s.id for s in network.subnets()),
        "routers": sorted(r.id for r in network.routers()),
        "flavors": sorted(f.id for f in admin_conn.compute.flavors()),
        "images": sorted(i.id for i in admin_conn.image.images()),
        "security_groups": sorted(g.id for g in network.security_groups()),
    }


def test_two_more_runs_duplicate_nothing_and_keep_a_users_server(minstack_cli, settings, admin_conn, test_image):
    demo = identity.user_connection(settings, "demo", "demo")
    image = demo.image.find_image(test_image["name"], ignore_missing=False)
    server = demo.compute.find_server(KEEPER) or demo.compute.create_server(
        name=KEEPER, image_id=image.id, flavor_id=demo.compute.find_flavor("cirros256").id,
        networks=[{"uuid": demo.network.find_network("private").id}])
    server = demo.compute.wait_for_server(server, status="ACTIVE", wait=300)
    before = inventory(admin_conn)
    try:
        for run in (1, 2):
            proc = minstack_cli.stack()
            assert proc.returncode == 0, f"run {run}: {proc.stdout[-3000:]}"
            assert "instance reachable: ping ok, ssh ok" in " ".join(proc.stdout.split())
        assert inventory(admin_conn) == before
        assert demo.compute.get_server(server.id).status == "ACTIVE"
    finally:
        demo.compute.delete_server(server)
        demo.compute.wait_for_delete(server, wait=180)


@pytest.mark.parametrize("phase", ["mysql", "neutron", "verify"], ids=["early", "middle", "late"])
def test_a_failed_run_reports_clearly_and_the_next_resumes(minstack_cli, phase):
    failed = minstack_cli.stack(env={"MINSTACK_DEBUG_FAIL_PHASE": phase})
    out = " ".join(failed.stdout.split())
    assert failed.returncode == 1, out[-2000:]
    assert f"phase: {phase}" in out and "failed on purpose" in out
    assert "to resume, fix the cause and run: ./stack.py" in out
    resumed = minstack_cli.stack()
    out = " ".join(resumed.stdout.split())
    assert resumed.returncode == 0, out[-3000:]
    assert f"resuming: the last run failed in phase {phase}" in out
    assert "the stack is up" in out


LOOP_ROUNDS = 20  # the long tier's load: twenty boots of the (bigger, CirrOS-like) test image


def test_looping_vm_launching_twenty_rounds_no_failure(localrc):
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "loop_boot.py"), str(LOOP_ROUNDS), "--config",
                           str(localrc), "--json"], capture_output=True, text=True, timeout=3000)
    summary = json.loads(proc.stdout)
    assert summary["rounds"] == LOOP_ROUNDS
    assert summary["failures"] == 0, [r for r in summary["details"] if not r["ok"]]
    assert proc.returncode == 0
    (REPO / "tests" / "artifacts").mkdir(exist_ok=True)
    (REPO / "tests" / "artifacts" / "loop_boot.json").write_text(proc.stdout)
