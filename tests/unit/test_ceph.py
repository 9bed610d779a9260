"""phases/ceph.py without a cluster: layout, config, readiness, and keys kept off command lines."""
from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest

from minstack import catalogue, templates
from minstack.context import Context
from minstack.pipeline import phase_module
from minstack.state import State
from test_settings import load

ceph = phase_module("ceph")

ALWAYS_ON = {"balancer", "crash", "devicehealth", "orchestrator", "pg_autoscaler", "progress", "rbd_support",
             "status", "telemetry", "volumes"}


def context(tmp_path, text="", sh=None):
    settings = load(tmp_path, text)
    return Context(settings=settings, phase="t", log=logging.getLogger("t"), sh=sh, supervisor=None,
                   state=State(tmp_path / "state.json"), log_path=tmp_path / "p.log")


# ---- ceph ----------------------------------------------------------------------------------------
def test_ceph_runs_with_cinders_volume_or_backup_service_only(tmp_path):
    phase = ceph.PHASE
    assert set(phase.services) == {"c-vol", "c-bak"} and "ceph" in phase.debs
    assert phase.enabled(load(tmp_path))  # c-vol is in DevStack's defaults
    assert not phase.enabled(load(tmp_path, "disable_service c-vol\n"))
    assert not phase.enabled(load(tmp_path, "disable_service cinder\n"))
    assert phase.enabled(load(tmp_path, "disable_service c-vol\nenable_service c-bak\n"))


def test_the_mon_listens_on_loopback_at_the_catalogues_ports():
    assert ceph.mon_addrs() == "[v2:127.0.0.1:3300,v1:127.0.0.1:6789]"
    assert catalogue.ports()["ceph-mon"] == 3300


def test_layout_is_under_data_dir(tmp_path):
    lay = ceph.layout(load(tmp_path, "DATA_DIR=/srv/data\n"))
    assert lay.mon == Path("/srv/data/ceph/mon/ceph-a") and lay.osd == Path("/srv/data/ceph/osd/ceph-0")
    assert lay.block == Path("/srv/data/ceph/osd/ceph-0.block") and lay.modules.parent == lay.root
    assert all(lay.root in path.parents for path in lay.ceph_dirs)


def test_keyrings_are_where_ceph_tools_look():
    assert ceph.keyring_path("client.admin") == Path("/etc/ceph/ceph.client.admin.keyring")
    assert ceph.keyring_path("client.cinder") == Path("/etc/ceph/ceph.client.cinder.keyring")


def test_key_in_a_keyring_and_the_osd_new_request():
    key = "AQBmb2JhcmJhemJhemJhemJhemJhemJhemJhei0xMg=="
    assert ceph.key_in(f"[osd.0]\n\tkey = {key}\n") == key
    with pytest.raises(ValueError):
        ceph.key_in("[osd.0]\n")
    assert json.loads(ceph.osd_new_request(key)) == {"cephx_secret": key}


def test_client_caps_name_each_pool():
    assert ceph.client_caps(["volumes"]) == {"mon": "profile rbd", "osd": "profile rbd pool=volumes",
                                             "mgr": "profile rbd pool=volumes"}
    assert ceph.client_caps(["volumes", "backups"])["osd"] == "profile rbd pool=volumes, profile rbd pool=backups"
    assert ceph.caps_args({"osd": "b", "mon": "a"}) == ["mon", "a", "osd", "b"]


def test_pools_follow_the_services(tmp_path):
    assert ceph.wanted_pools(load(tmp_path)) == ["volumes"]
    assert ceph.wanted_pools(load(tmp_path, "enable_service c-bak\n")) == ["volumes", "backups"]


def test_mgr_modules_are_the_always_on_ones_only(tmp_path):
    links = ceph.module_links(Path("/usr/share/ceph/mgr"))
    assert set(links) == ALWAYS_ON | {"mgr_module.py", "mgr_util.py"}
    directory = tmp_path / "mods"
    directory.mkdir()
    assert set(ceph.link_differences(directory, links)) == set(links)
    for name, target in links.items():
        (directory / name).symlink_to(target)
    assert ceph.link_differences(directory, links) == []
    (directory / "prometheus").symlink_to("/usr/share/ceph/mgr/prometheus")  # loaded, it costs memory
    assert ceph.link_differences(directory, links) == ["prometheus"]


HEALTHY = {"health": {"status": "HEALTH_OK", "checks": {}}, "osdmap": {"num_up_osds": 1},
           "mgrmap": {"available": True}, "pgmap": {"pgs_by_state": [{"state_name": "active+clean", "count": 9}]}}


def test_health_ok_alone_is_not_ready():
    # measured: a fresh cluster says HEALTH_OK before its OSD is up, and before any PG exists
    fresh = {"health": {"status": "HEALTH_OK", "checks": {}}, "osdmap": {"num_up_osds": 0},
             "mgrmap": {"available": True}, "pgmap": {"pgs_by_state": []}}
    assert ceph.not_ready(fresh) == ["no OSD up"]
    assert ceph.not_ready(HEALTHY) == []
    peering = json.loads(json.dumps(HEALTHY))
    peering["pgmap"]["pgs_by_state"].append({"state_name": "creating+peering", "count": 8})
    assert ceph.not_ready(peering) == ["PGs 8 creating+peering"]
    warn = dict(HEALTHY, health={"status": "HEALTH_WARN", "checks": {"MON_DISK_LOW": {}}})
    assert ceph.not_ready(warn) == ["health HEALTH_WARN: MON_DISK_LOW"]
    assert "no mgr available" in ceph.not_ready({})
    scrubbing = json.loads(json.dumps(HEALTHY))
    scrubbing["pgmap"]["pgs_by_state"].append({"state_name": "active+clean+scrubbing+deep", "count": 1})
    assert ceph.not_ready(scrubbing) == []  # serving I/O: a re-run has nothing to wait for


def test_the_libvirt_secret_uuid_is_stable_per_cluster():
    one, two = str(uuid.uuid4()), str(uuid.uuid4())
    assert ceph.secret_uuid(one) == ceph.secret_uuid(one) != ceph.secret_uuid(two)
    uuid.UUID(ceph.secret_uuid(one))


def test_only_minstacks_own_ceph_conf_counts_as_ours(tmp_path):
    conf = tmp_path / "ceph.conf"
    assert not ceph.is_ours(conf)
    conf.write_text("[global]\nfsid = x\n")
    assert not ceph.is_ours(conf)
    conf.write_text(f"{ceph.MARKER}; ...\n[global]\n")
    assert ceph.is_ours(conf)


def test_ceph_conf(tmp_path):
    s = load(tmp_path)
    text = templates.render("ceph/ceph.conf.j2", s, marker=ceph.MARKER, fsid="f" * 8, mon_addrs=ceph.mon_addrs(),
                            data=Path("/opt/stack/data/ceph"), block_size=s.ceph_loopback_disk_size)
    assert text.startswith(ceph.MARKER)
    for line in ("mon_host = [v2:127.0.0.1:3300,v1:127.0.0.1:6789]", "public_addr = 127.0.0.1",
                 "cluster_addr = 127.0.0.1", "osd_pool_default_size = 1", "mon_allow_pool_size_one = true",
                 "osd_crush_chooseleaf_type = 0", "bluestore_block_create = true",
                 f"bluestore_block_size = {10 * 2 ** 30}",
                 "bluestore_block_path = /opt/stack/data/ceph/osd/$cluster-$id.block",
                 "mgr_module_path = /opt/stack/data/ceph/mgr-modules", "mgr_initial_modules =",
                 "osd_memory_target = 939524096", "bluestore_cache_autotune = false", "log_to_file = false"):
        assert f"\n{line}\n" in text, line
    assert "key" not in text.replace("keyring", "")  # no secret in a 0644 file


def test_ceph_daemons_run_as_ceph_in_the_foreground(tmp_path):
    ctx = context(tmp_path)
    daemons = {d.name: d for d in ceph.PHASE.daemons(ctx)}
    assert list(daemons) == ["ceph-mon", "ceph-mgr", "ceph-osd"]
    for d in daemons.values():
        assert d.user == "ceph" and d.service == "ceph" and d.ready is not None
        assert d.argv[1:] == ["-d", "--cluster", "ceph", "-c", "/etc/ceph/ceph.conf", "-i", d.argv[-1]]
    assert [d.argv[-1] for d in daemons.values()] == ["a", "x", "0"]


def test_ceph_steps_in_order(tmp_path):
    names = [step.name for step in ceph.PHASE.steps(context(tmp_path))]
    assert names == ["no other cluster", "directories", "fsid", "config", "mgr modules", "monitor", "start ceph-mon",
                     "start ceph-mgr", "osd", "start ceph-osd", "pools", "client key", "healthy"]


class FakeShell:
    """Records every command; ceph-authtool writes a keyring the way the real one does."""

    KEY = "AQBzZWNyZXRzZWNyZXRzZWNyZXRzZWNyZXQtMTIzNA=="

    def __init__(self):
        self.argvs: list[list[str]] = []
        self.seen_requests: list[bytes] = []

    def run(self, argv, **kwargs):
        argv = [str(a) for a in argv]
        self.argvs.append(argv)
        if argv[0] == "ceph-authtool" and "--gen-key" in argv:
            Path(argv[-1]).write_text(f"[{argv[argv.index('-n') + 1]}]\n\tkey = {self.KEY}\n")
        if argv[:3] == ["ceph", "osd", "new"]:
            self.seen_requests.append(Path(argv[-1]).read_bytes())

    def output(self, argv, **kwargs):
        self.run(argv)
        return "[]"


def test_osd_creation_keeps_its_key_off_command_lines(tmp_path, monkeypatch):
    sh = FakeShell()
    ctx = context(tmp_path, f"DATA_DIR={tmp_path}/data\n", sh=sh)
    lay = ceph.layout(ctx.settings)
    (lay.root / "osd").mkdir(parents=True)
    monkeypatch.setattr(ceph.shutil, "chown", lambda *a, **k: None)
    ceph.create_osd(ctx, lay)
    assert all(FakeShell.KEY not in word for argv in sh.argvs for word in argv)
    assert json.loads(sh.seen_requests[0]) == {"cephx_secret": FakeShell.KEY}
    assert not (lay.osd / "new.json").exists()  # the request with the key is gone
    mkfs = sh.argvs[-1]
    assert mkfs[:1] == ["ceph-osd"] and "--mkfs" in mkfs and "--key" not in mkfs and "--mkkey" not in mkfs
    assert (lay.osd / "keyring").stat().st_mode & 0o777 == 0o600


def test_monitor_creation_keeps_keys_off_command_lines(tmp_path, monkeypatch):
    sh = FakeShell()
    ctx = context(tmp_path, f"DATA_DIR={tmp_path}/data\n", sh=sh)
    lay = ceph.layout(ctx.settings)
    lay.mgr.mkdir(parents=True)
    lay.fsid_file.write_text(f"{uuid.uuid4()}\n")
    monkeypatch.setattr(ceph, "keyring_path", lambda entity: tmp_path / f"ceph.{entity}.keyring")
    monkeypatch.setattr(ceph.shutil, "chown", lambda *a, **k: None)
    ceph.create_monitor(ctx, lay)
    assert all(FakeShell.KEY not in word for argv in sh.argvs for word in argv)
    assert [argv[0] for argv in sh.argvs] == ["ceph-authtool"] * 5 + ["monmaptool", "ceph-mon"]
    assert not (lay.root / "mkfs").exists()  # the mon keyring and monmap are gone after mkfs
    assert (tmp_path / "ceph.client.admin.keyring").stat().st_mode & 0o777 == 0o600


class NoShell:
    def run(self, argv, **kwargs):
        raise AssertionError(f"a probe ran {argv} where no cluster exists")

    output = ok = run


class NothingRuns:
    def is_running(self, daemon):
        return False


def test_a_fresh_hosts_plan_asks_no_cluster_anything(tmp_path, monkeypatch):
    # ./stack.py plan before anything exists: no ceph CLI call (it would hang without a mon)
    from minstack.pipeline import look
    monkeypatch.setattr(ceph, "CONF", tmp_path / "etc" / "ceph.conf")
    ctx = context(tmp_path, f"DATA_DIR={tmp_path}/data\n", sh=NoShell())
    ctx.supervisor = NothingRuns()
    looks = {step.name: look(step, ctx.state, "ceph") for step in ceph.PHASE.steps(ctx)}
    assert looks.pop("no other cluster").skip == "already so"
    assert all(seen.skip is None for seen in looks.values()), {n: s.skip for n, s in looks.items() if s.skip}
    assert looks["pools"].observation == ["volumes"] and looks["client key"].observation == ["missing"]


def test_the_settings_check_the_space_of_the_block_file_the_phase_makes(tmp_path):
    s = load(tmp_path, f"DATA_DIR={tmp_path}/data\n")
    assert ceph.layout(s).block == s.data_dir / "ceph" / "osd" / "ceph-0.block"  # minstack/settings.py's
    assert s.ceph_loopback_disk_size == 10 * 2 ** 30
