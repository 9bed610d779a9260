"""tempest.conf as phases/tempest.py renders it: this stack's values, the enabled services, and
local.conf's [[test-config|$TEMPEST_CONFIG]] merged last (no cloud needed: the lookups are given)."""
from __future__ import annotations

import configparser
import re
import textwrap
from pathlib import Path

from minstack import templates
from minstack.pipeline import phase_module
from minstack.settings import load_settings
from test_settings import HOST

tempest = phase_module("tempest")

LOOKUPS = dict(workspace=Path("/opt/stack/tempest"), image_ref="img-1", image_ref_alt="img-1",
               image_ssh_user="cirros", img_file=Path("/opt/stack/data/tempest/images/t.qcow2"),
               img_disk_format="qcow2", img_properties={"hw_machine_type": "pc", "hw_disk_bus": "virtio"},
               flavor_ref="c1", flavor_ref_alt="d1", fixed_network_name="private", fixed_subnet_name="private-subnet",
               public_network_id="pub-1",
               floating_network_name="public", network_extensions=["router", "agent", "port-security"],
               compute_max_microversion="2.100", dashboard_url="http://10.0.0.5/dashboard/")


def settings(tmp_path, *parts: str):
    """Load a local.conf made of LOCALRC's [[local|localrc]] and more lines or sections."""
    path = tmp_path / "local.conf"
    path.write_text("".join(textwrap.dedent(part).lstrip("\n") for part in parts))
    return load_settings(path, HOST, environ={})


def rendered(s) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(tempest.render_config(s, **LOOKUPS))
    return parser


LOCALRC = """
    [[local|localrc]]
    HOST_IP=192.168.1.10
    ADMIN_PASSWORD='a "b" $c'
    ENABLED_SERVICES=mysql,rabbit,key,g-api,placement-api,placement-client,n-api,n-cond,n-sch,n-cpu
    enable_service n-api-meta q-svc q-ovn-agent ovn-northd ovn-controller ovs-vswitchd ovsdb-server tempest
"""


def test_conf_describes_the_stack(tmp_path):
    conf = rendered(settings(tmp_path, LOCALRC))
    assert conf["identity"]["uri_v3"] == "http://192.168.1.10:5000/v3"
    assert conf["auth"]["use_dynamic_credentials"] == "true"
    assert conf["auth"]["admin_password"] == '"a "b" $$c"'  # oslo.config reads back: a "b" $c
    assert (conf["compute"]["image_ref"], conf["compute"]["flavor_ref"], conf["compute"]["flavor_ref_alt"]) == \
        ("img-1", "c1", "d1")
    assert conf["network"]["public_network_id"] == "pub-1"
    assert conf["network"]["project_network_cidr"] == "10.0.0.0/22"
    assert conf["network-feature-enabled"]["api_extensions"] == "router,agent,port-security"
    assert conf["compute-feature-enabled"]["max_microversion"] == "2.100"
    assert conf["compute-feature-enabled"]["live_migration"] == "false"
    assert conf["compute-feature-enabled"]["metadata_service"] == "true"
    assert conf["validation"]["connect_method"] == "floating"
    assert conf["scenario"]["img_properties"] == "hw_machine_type:pc,hw_disk_bus:virtio"
    assert conf["DEFAULT"]["log_dir"] == "/opt/stack/logs"


def test_services_not_stacked_are_unavailable(tmp_path):
    conf = rendered(settings(tmp_path, LOCALRC))
    available = conf["service_available"]
    assert (available["nova"], available["neutron"], available["glance"]) == ("true", "true", "true")
    assert (available["cinder"], available["swift"], available["horizon"]) == ("false", "false", "false")
    assert not conf.has_section("dashboard")
    assert not conf.has_option("compute-feature-enabled", "vnc_console")


def test_cinder_switches_its_volume_sections_on(tmp_path):
    assert not rendered(settings(tmp_path, LOCALRC)).has_section("volume")
    conf = rendered(settings(tmp_path, LOCALRC, "enable_service c-api c-sch c-vol\n"))
    assert conf["service_available"]["cinder"] == "true"
    volume, features = conf["volume"], conf["volume-feature-enabled"]
    assert (volume["catalog_type"], volume["storage_protocol"], volume["vendor_name"], volume["backend_names"]) == \
        ("volumev3", "ceph", "Open Source", "ceph")
    assert (features["multi_backend"], features["backup"], features["manage_volume"]) == ("false", "false", "false")
    conf = rendered(settings(tmp_path, LOCALRC, "enable_service c-api c-sch c-vol c-bak\n",
                             "CINDER_ENABLED_BACKENDS=ceph:rbd-1,ceph:rbd-2\n"))
    assert conf["volume"]["backend_names"] == "rbd-1,rbd-2"
    assert (conf["volume-feature-enabled"]["multi_backend"], conf["volume-feature-enabled"]["backup"]) == \
        ("true", "true")


def test_horizon_and_novnc_switch_their_tests_on(tmp_path):
    conf = rendered(settings(tmp_path, LOCALRC, "enable_service horizon n-novnc\n"))
    assert conf["service_available"]["horizon"] == "true"
    assert conf["dashboard"]["dashboard_url"] == "http://10.0.0.5/dashboard/"
    assert conf["compute-feature-enabled"]["vnc_console"] == "true"


def test_no_metadata_service_without_the_metadata_api(tmp_path):
    conf = rendered(settings(tmp_path, LOCALRC, "disable_service n-api-meta\n"))
    assert conf["compute-feature-enabled"]["metadata_service"] == "false"


def test_test_config_sections_are_merged_last(tmp_path):
    s = settings(tmp_path, LOCALRC, """
        [[test-config|$TEMPEST_CONFIG]]
        [compute-feature-enabled]
        resize = false
        [new-section]
        key = $HOST_IP
        [[post-config|$NOVA_CONF]]
        [DEFAULT]
        debug = true
    """)
    conf = rendered(s)
    assert conf["compute-feature-enabled"]["resize"] == "false"
    assert conf["new-section"]["key"] == "192.168.1.10"
    # nova.conf's section stays nova's
    assert tempest.merge_entries(s, tempest.config_file(s)) == [
        ("compute-feature-enabled", "resize", "false"), ("new-section", "key", "192.168.1.10")]
    assert tempest.merge_entries(s, Path("/etc/nova/nova.conf")) == [("DEFAULT", "debug", "true")]


def test_test_config_follows_a_moved_tempest_config(tmp_path):
    s = settings(tmp_path, LOCALRC, """
        TEMPEST_CONFIG=/srv/tempest.conf
        [[test-config|$TEMPEST_CONFIG]]
        [compute]
        build_timeout = 600
    """)
    assert tempest.config_file(s) == Path("/srv/tempest.conf")
    assert rendered(s)["compute"]["build_timeout"] == "600"


def test_run_paths_for_the_smoke_script(tmp_path):
    paths = tempest.run_paths(settings(tmp_path, LOCALRC))
    assert paths == {"TEMPEST_VENV": "/opt/stack/data/tempest/venv", "TEMPEST_WORKSPACE": "/opt/stack/tempest",
                     "TEMPEST_CONFIG": "/opt/stack/tempest/etc/tempest.conf", "STACK_USER": "stack",
                     "TEMPEST_LOG": "/opt/stack/logs/tempest.log",
                     "TEMPEST_EXCLUDE_LIST": "/opt/stack/tempest/etc/exclude-list.txt",
                     "TEMPEST_EXPECTED_SKIPS": "/opt/stack/tempest/etc/expected-skips.txt",
                     "TEMPEST_ORCHESTRATION_EXCLUDE_LIST": "/opt/stack/tempest/etc/orchestration-exclude-list.txt",
                     "TEMPEST_ORCHESTRATION_EXPECTED_SKIPS": "/opt/stack/tempest/etc/orchestration-expected-skips.txt"}


def test_lock_file_pins_tempest_for_the_release():
    lock = tempest.lock_file("2026.2").read_text()
    assert "\ntempest==47.0.0\n" in lock


def listed(template: str, s, **extra) -> tuple[str, list[str]]:
    """A rendered list (exclude list, expected skips): its text and its entries."""
    text = templates.render(f"tempest/{template}", s, **extra)
    return text, [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_no_test_is_left_out(tmp_path):
    """The offline test image runs what CirrOS runs: nothing is excluded, whatever the image."""
    assert listed("exclude-list.txt.j2", settings(tmp_path, LOCALRC))[1] == []


def test_every_expected_skip_has_its_reason_and_names_one_class_or_test(tmp_path):
    text, entries = listed("expected-skips.txt.j2", settings(tmp_path, LOCALRC))
    lines = text.splitlines()
    for entry in entries:
        re.compile(entry)
        assert entry.startswith(r"^setUpClass \(tempest\.") or entry.startswith(r"^tempest\."), entry
        # the comment block above the entry (or above its group of entries) says why
        above = [line for line in lines[:lines.index(entry)] if line not in entries]
        reason = []
        while above and above[-1].startswith("# "):
            reason.insert(0, above.pop())
        assert len(" ".join(reason)) > 40, entry
    # no scenario test of the two gate modules may skip but router rescheduling (no L3 agents in OVN)
    scenario = [e for e in entries if "test_network_basic_ops" in e or "test_server_basic_ops" in e]
    assert scenario == [r"^tempest\.scenario\.test_network_basic_ops\.TestNetworkBasicOps\.test_router_rescheduling\b"]


def test_expected_skips_follow_the_enabled_services(tmp_path):
    without_cinder = listed("expected-skips.txt.j2", settings(tmp_path, LOCALRC))[1]
    assert any("tempest\\.api\\.volume" in e for e in without_cinder)
    with_cinder = listed("expected-skips.txt.j2", settings(tmp_path, LOCALRC, "enable_service c-api c-sch c-vol\n"))[1]
    assert not any("volume" in e.lower() for e in with_cinder)
    assert not any("test_dashboard_basic_ops" in e for e in without_cinder) == \
        settings(tmp_path, LOCALRC).is_enabled("horizon")
