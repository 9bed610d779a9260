"""phases/cinder.py without a cloud: its services, Cinder's uWSGI argv and config, the venv's rados/rbd links."""
from __future__ import annotations

import logging
from pathlib import Path

from minstack import catalogue, templates
from minstack.context import Context
from minstack.pipeline import phase_module
from minstack.state import State
from test_settings import load

ceph = phase_module("ceph")
cinder = phase_module("cinder")


def context(tmp_path, text="", sh=None):
    settings = load(tmp_path, text)
    return Context(settings=settings, phase="t", log=logging.getLogger("t"), sh=sh, supervisor=None,
                   state=State(tmp_path / "state.json"), log_path=tmp_path / "p.log")


# ---- cinder --------------------------------------------------------------------------------------
def test_cinder_is_in_the_catalogue_with_its_api():
    api = catalogue.api("cinder-api")
    assert (api.module, api.port, api.path, api.config_env) == ("cinder.wsgi.api", 8776, "/v3", "")
    assert catalogue.project("cinder").catalog.type == "block-storage"
    assert cinder.PHASE.services == ("c-api", "c-sch", "c-vol", "c-bak")
    assert "ceph" in cinder.PHASE.requires


def test_cinder_daemons_follow_the_services(tmp_path):
    names = [d.name for d in cinder.PHASE.daemons(context(tmp_path))]
    assert names == ["cinder-api", "cinder-scheduler", "cinder-volume"]
    names = [d.name for d in cinder.PHASE.daemons(context(tmp_path, "enable_service c-bak\ndisable_service c-vol\n"))]
    assert names == ["cinder-api", "cinder-scheduler", "cinder-backup"]
    for d in cinder.PHASE.daemons(context(tmp_path, "CINDER_CONF=/srv/c/cinder.conf\n")):
        assert d.user == "stack"
        if d.name != "cinder-api":
            assert d.argv[1:] == ["--config-file", "/srv/c/cinder.conf"]


def test_cinder_api_gets_its_config_file_through_pyargv(tmp_path):
    ctx = context(tmp_path, "CINDER_CONF=/srv/c/cinder.conf\n")
    ini = cinder.PHASE.uwsgi_config(ctx, catalogue.api("cinder-api")).content.decode()
    assert "\nmodule = cinder.wsgi.api\n" in ini
    assert "\npyargv = --config-file /srv/c/cinder.conf\n" in ini
    assert "env = OS_" not in ini


def render_cinder_conf(tmp_path, text="", **overrides):
    s = load(tmp_path, text)
    values = dict(conf_dir=Path("/etc/cinder"), rootwrap_conf=Path("/etc/cinder/rootwrap.conf"),
                  state_path=s.data_dir / "cinder", lock_path=s.data_dir / "cinder" / "locks",
                  volume=s.is_enabled("c-vol"), backends=s.cinder_enabled_backends,
                  backup=s.is_enabled("c-bak"), ceph_conf=ceph.CONF,
                  rbd_user=ceph.CLIENT, volumes_pool=ceph.VOLUMES, backups_pool=ceph.BACKUPS,
                  secret_uuid="1234")
    values.update(overrides)
    return templates.render("cinder/cinder.conf.j2", s, **values)


def test_cinder_conf_uses_the_rbd_backend(tmp_path):
    text = render_cinder_conf(tmp_path)
    for line in ("enabled_backends = ceph", "[ceph]", "volume_driver = cinder.volume.drivers.rbd.RBDDriver",
                 "rbd_pool = volumes", "rbd_user = cinder", "rbd_ceph_conf = /etc/ceph/ceph.conf",
                 "rbd_secret_uuid = 1234"):
        assert f"\n{line}\n" in text, line
    assert "backup_driver" not in text and "fake" not in text.lower()


def test_cinder_conf_has_a_section_per_enabled_backend(tmp_path):
    text = render_cinder_conf(tmp_path, "CINDER_ENABLED_BACKENDS=ceph:rbd-1,ceph:rbd-2\n")
    assert "\nenabled_backends = rbd-1,rbd-2\n" in text
    for name in ("rbd-1", "rbd-2"):
        part = text.split(f"\n[{name}]\n", 1)[1].split("\n[", 1)[0]
        assert f"\nvolume_backend_name = {name}\n" in part and "\nrbd_pool = volumes\n" in part
    assert "\n[ceph]\n" not in text


def test_cinder_conf_without_volume_service_has_no_backend_but_backup_when_asked(tmp_path):
    text = render_cinder_conf(tmp_path, "disable_service c-vol\nenable_service c-bak\n")
    assert "[ceph]" not in text and "enabled_backends" not in text
    assert "\nbackup_driver = cinder.backup.drivers.ceph.CephBackupDriver\n" in text
    assert "\nbackup_ceph_pool = backups\n" in text


def test_rados_and_rbd_are_linked_by_the_venvs_abi(tmp_path):
    site = tmp_path / "site-packages"
    site.mkdir()
    links = cinder.binding_links(site, ".cpython-311-x86_64-linux-gnu.so", Path("/usr/lib/python3/dist-packages"))
    assert links == {site / "rados.cpython-311-x86_64-linux-gnu.so":
                     Path("/usr/lib/python3/dist-packages/rados.cpython-311-x86_64-linux-gnu.so"),
                     site / "rbd.cpython-311-x86_64-linux-gnu.so":
                     Path("/usr/lib/python3/dist-packages/rbd.cpython-311-x86_64-linux-gnu.so")}
    assert cinder.links_differ(links) == list(links)
    for link, target in links.items():
        link.symlink_to(target)
    assert cinder.links_differ(links) == []


def test_tempest_sees_cinder_when_its_api_runs(tmp_path):
    assert catalogue.tempest_available(load(tmp_path))["cinder"]
    assert not catalogue.tempest_available(load(tmp_path, "disable_service cinder\n"))["cinder"]
