"""heat-tempest-plugin (issue 13): installed from Tempest's lock, configured in tempest.conf's
[heat_plugin] when Heat is stacked, and run by tools/tempest-smoke.sh --orchestration with its own
exclude list and expected skips (no cloud needed: the lookups are given)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from minstack.paths import REQUIREMENTS
from test_tempest_config import LOCALRC, listed, rendered, settings, tempest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = (REPO / "tools" / "tempest-smoke.sh").read_text()
HEAT = "enable_service heat\n"
# the neutron extensions ML2/OVN has here, but trunk (minstack's service_plugins has no trunk)
EXTENSIONS = ["extraroute", "extraroute-atomic", "router", "security-group", "standard-attr-tag"]

# test ids as `tempest run --list-tests` gives them with heat-tempest-plugin 3.0.0 installed
GABBI = ["heat_tempest_plugin.tests.api.test_heat_api.stacks_create_stack.test_request"
         "[id-56ac2173-97c5-4347-bd32-529a260cfac3]",
         "heat_tempest_plugin.tests.api.test_heat_api.stacks_poll_for_stack_create_complete.test_request"
         "[id-6a0fe2dc-2822-4af3-b606-321ff7ad3de9]",
         "heat_tempest_plugin.tests.api.test_heat_api.resources_create_stack_with_resources.test_request"
         "[id-947be7b2-503d-41f5-9843-61be50954f13]",
         "heat_tempest_plugin.tests.api.test_heat_api.resourcetypes_list_resource_types.test_request"
         "[id-5b4db88b-d171-4400-b7a7-a7dc8f597d31]",
         "heat_tempest_plugin.tests.api.test_heat_api.softwareconfig_show_config.test_request"
         "[id-d26d149a-4924-11e8-842f-0ed5f89f718b]"]
PLUGIN = [*GABBI,
          "heat_tempest_plugin.tests.functional.test_hooks.HooksTest.test_hook_pre_create"
          "[id-f14cbe86-0392-474a-9f28-bb561745698d]",
          "heat_tempest_plugin.tests.functional.test_create_update_neutron_trunk.UpdateTrunkTest"
          ".test_add_first_sub_port[id-5572b0ac-fdb2-4c68-a49e-024771814471]",
          "heat_tempest_plugin.tests.functional.test_os_wait_condition.OSWaitCondition"
          ".test_create_stack_with_multi_signal_waitcondition"
          "[id-cc54ca6e-b91d-4ddd-80cc-24a886dfaaa0]",
          "heat_tempest_plugin.tests.scenario.test_server_signal.ServerSignalIntegrationTest"
          ".test_server_signal_userdata_format_raw[id-8da0f6cc-60e6-4298-9e54-e1f905c5552a]",
          "heat_tempest_plugin.tests.scenario.test_server_signal.ServerSignalIntegrationTest"
          ".test_server_signal_userdata_format_software_config[id-3d753d42-7c16-4a0e-8f73-875881826626]",
          "heat_tempest_plugin.tests.scenario.test_remote_deeply_nested.RemoteDeeplyNestedStackTest"
          ".test_remote_nested[id-2ed94cae-da14-4060-a6b3-526e7a8cbbe4]"]
TEMPEST = ["tempest.api.compute.servers.test_create_server.ServersTestJSON.test_list_servers"
           "[id-9a438d88-10c6-4bcd-8b5b-5b6e25e1346f,smoke]",
           "tempest.scenario.test_network_basic_ops.TestNetworkBasicOps.test_network_basic_ops"
           "[compute,id-f323b3ba-82f8-4db7-8ea6-6a895869ec49,network,slow]",
           "tempest.api.identity.v3.test_tokens.TokensV3Test.test_create_token[id-6f8e4436-fc96-4282-8122-e41df57197a9]"]


def script_var(name: str) -> str:
    """A single-quoted shell variable of tools/tempest-smoke.sh."""
    return re.search(rf"^{name}='([^']*)'$", SCRIPT, re.M).group(1)


# ---- the plugin in Tempest's venv ----------------------------------------------------------------
def test_the_plugin_is_pinned_and_locked_with_what_it_pulls_in():
    assert re.search(r"^heat-tempest-plugin==3\.0\.0$", (REQUIREMENTS / "tempest-2026.2.txt").read_text(), re.M)
    lock = tempest.lock_file("2026.2").read_text()
    for pin in ("heat-tempest-plugin==3.0.0", "tempest==47.0.0", "gabbi==", "python-heatclient==5.3.0"):
        assert re.search(rf"^{re.escape(pin)}", lock, re.M), pin


def test_the_packages_both_venvs_hold_have_the_services_versions():
    """Resolved with the services' lock as a constraint: one version of each shared package."""
    def pins(name):
        text = (REQUIREMENTS / name).read_text()
        return dict(re.findall(r"^([a-z0-9._-]+)==(\S+)$", text, re.M))
    services, tempest_lock = pins("2026.2-lock.txt"), pins("tempest-2026.2-lock.txt")
    differing = {n: (v, services[n]) for n, v in tempest_lock.items() if n in services and services[n] != v}
    assert not differing


# ---- tempest.conf's [heat_plugin] -----------------------------------------------------------------
def test_no_heat_plugin_section_without_heat(tmp_path):
    conf = rendered(settings(tmp_path, LOCALRC))
    assert not conf.has_section("heat_plugin")
    assert conf["service_available"]["heat"] == "false"


def test_heat_plugin_section_describes_the_stack(tmp_path):
    conf = rendered(settings(tmp_path, LOCALRC, HEAT))
    assert conf["service_available"]["heat"] == "true"
    heat = conf["heat_plugin"]
    assert heat["auth_url"] == "http://192.168.1.10:5000/v3"
    assert (heat["username"], heat["project_name"], heat["user_domain_id"], heat["project_domain_id"]) == \
        ("demo", "demo", "default", "default")
    assert (heat["admin_username"], heat["admin_project_name"]) == ("admin", "admin")
    # DevStack's demo user logs in with ADMIN_PASSWORD, as admin does
    assert heat["password"] == heat["admin_password"] == conf["auth"]["admin_password"]
    assert (heat["minimal_image_ref"], heat["minimal_instance_type"]) == ("img-1", "c1")
    assert (heat["fixed_network_name"], heat["network_for_ssh"], heat["fixed_subnet_name"]) == \
        ("private", "private", "private-subnet")
    assert heat["floating_network_name"] == "public"
    assert heat["region"] == conf["identity"]["region"] == "RegionOne"
    # no full-OS image with Heat's agents: the tests that need one skip or are left out
    for unset in ("image_ref", "instance_type", "hidden_stack_tag", "auth_version"):
        assert unset not in heat, unset


def test_test_config_can_change_heat_plugin(tmp_path):
    conf = rendered(settings(tmp_path, LOCALRC, HEAT, """
        [[test-config|$TEMPEST_CONFIG]]
        [heat_plugin]
        build_timeout = 600
    """))
    assert conf["heat_plugin"]["build_timeout"] == "600"
    assert conf["heat_plugin"]["username"] == "demo"


# ---- the orchestration lists --------------------------------------------------------------------
def exclusions(tmp_path, extensions=EXTENSIONS, user_data_runs=True, extra=HEAT):
    no_signal = None if user_data_runs else "the image is minstack's offline test image, which runs no script"
    return listed("orchestration-exclude-list.txt.j2", settings(tmp_path, LOCALRC, extra),
                  network_extensions=extensions, no_guest_signal=no_signal)


def excluded(entries, test_id) -> bool:
    return any(re.search(entry, test_id) for entry in entries)


def assert_each_entry_has_its_reason(text, entries):
    lines = text.splitlines()
    for entry in entries:
        re.compile(entry)
        assert entry.startswith(r"^heat_tempest_plugin\.tests\."), entry
        above = [line for line in lines[:lines.index(entry)] if line not in entries]
        reason = []
        while above and above[-1].startswith("# "):
            reason.insert(0, above.pop())
        assert len(" ".join(reason)) > 40, entry


def test_every_exclusion_has_its_reason(tmp_path):
    for extensions, runs in ((EXTENSIONS, True), ([], False)):
        assert_each_entry_has_its_reason(*exclusions(tmp_path, extensions, runs))


def test_exclusions_leave_the_api_tests_and_what_this_stack_runs(tmp_path):
    entries = exclusions(tmp_path)[1]
    for test_id in [*GABBI, PLUGIN[5], PLUGIN[7], PLUGIN[8], PLUGIN[10]]:
        assert not excluded(entries, test_id), test_id
    # the agents' image, Zaqar, Aodh, Octavia, multi-cloud: never here
    for left_out in (PLUGIN[9],
                     "heat_tempest_plugin.tests.scenario.test_server_cfn_init.CfnInitIntegrationTest.test_server_cfn_init",
                     "heat_tempest_plugin.tests.functional.test_waitcondition.ZaqarWaitConditionTest.test_signal_queues",
                     "heat_tempest_plugin.tests.scenario.test_aodh_alarm.AodhAlarmTest.test_alarm",
                     "heat_tempest_plugin.tests.scenario.test_octavia_lbaas.LoadBalancerTest.test_create_update_loadbalancer",
                     "heat_tempest_plugin.tests.functional.test_remote_stack.RemoteStackTest"
                     ".test_stack_create_with_cloud_credential[id-6b61d8e3-79df-4e84-bdcf-f734da39d52b]"):
        assert excluded(entries, left_out), left_out
    assert not excluded(entries, "heat_tempest_plugin.tests.functional.test_remote_stack.RemoteStackTest"
                                 ".test_stack_create[id-aeed20d1-ebda-4544-9ace-16b0c8fc24f6]")


def test_neutron_resource_tests_follow_neutron_extensions(tmp_path):
    trunk = PLUGIN[6]
    extra_route = "heat_tempest_plugin.tests.functional.test_extra_route_set.ExtraRouteSetTest.test_create_one"
    entries = exclusions(tmp_path)[1]
    assert excluded(entries, trunk) and not excluded(entries, extra_route)
    entries = exclusions(tmp_path, [*EXTENSIONS, "trunk"])[1]
    assert not excluded(entries, trunk)
    entries = exclusions(tmp_path, ["router"])[1]
    assert excluded(entries, extra_route)


def test_user_data_tests_are_left_out_only_for_the_offline_image(tmp_path):
    signal_raw, wait_condition = PLUGIN[8], PLUGIN[7]
    entries = exclusions(tmp_path, user_data_runs=False)[1]
    assert excluded(entries, signal_raw) and excluded(entries, wait_condition)
    entries = exclusions(tmp_path, user_data_runs=True)[1]
    assert not excluded(entries, signal_raw) and not excluded(entries, wait_condition)


def test_user_data_runs_unless_the_image_is_minstack_offline_one(tmp_path):
    s = settings(tmp_path, LOCALRC, HEAT, f"DATA_DIR={tmp_path}/data\n")
    record = s.state_dir / "images.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps([{"name": "minstack-testimage", "offline": True}]))
    assert not tempest.user_data_runs(s)
    record.write_text(json.dumps([{"name": "cirros-0.6.3-x86_64-disk", "offline": False}]))
    assert tempest.user_data_runs(s)


def test_guests_cannot_signal_a_heat_on_loopback(tmp_path):
    """CI's SERVICE_HOST is 127.0.0.1: in a guest that is the guest (OSWaitCondition timed out)."""
    s = settings(tmp_path, LOCALRC, HEAT, f"DATA_DIR={tmp_path}/data\nHOST_IP=127.0.0.1\n")
    assert "loopback" in tempest.why_guests_cannot_signal(s)
    s = settings(tmp_path, LOCALRC, HEAT, f"DATA_DIR={tmp_path}/data\nHOST_IP=192.168.1.10\n")
    assert tempest.why_guests_cannot_signal(s) is None


def test_expected_skips_follow_cinder_and_its_backup_service_and_each_has_its_reason(tmp_path):
    def skips(*more: str) -> tuple[str, list[str]]:
        return listed("orchestration-expected-skips.txt.j2",
                      settings(tmp_path, LOCALRC, HEAT, f"DATA_DIR={tmp_path}/data\n", *more))

    text, without_cinder = skips()
    assert_each_entry_has_its_reason(text, without_cinder)
    # the names subunit-trace prints for these skips (no attributes, no time)
    volumes = ["heat_tempest_plugin.tests.functional.test_encryption_vol_type.EncryptionVolTypeTest"
               ".test_create_update",
               "heat_tempest_plugin.tests.scenario.test_base_resources.BasicResourcesTest"
               ".test_base_resources_integration"]
    backup = ["heat_tempest_plugin.tests.scenario.test_volumes.VolumeBackupRestoreIntegrationTest"
              ".test_cinder_volume_create_backup_restore"]
    tags = ["heat_tempest_plugin.tests.functional.test_stack_tags.StackTagTest.test_hidden_stack"]

    def matches(entries: list[str]) -> list[str]:
        assert all(any(excluded([e], name) for name in volumes + backup + tags) for e in entries), entries
        return [name for name in volumes + backup + tags if excluded(entries, name)]

    assert matches(without_cinder) == volumes + backup + tags and len(without_cinder) == 4
    # DevStack's (and minstack's) defaults: Cinder without c-bak, as CI stacks it
    text, with_cinder = skips("enable_service c-api c-sch c-vol\n")
    assert_each_entry_has_its_reason(text, with_cinder)
    assert matches(with_cinder) == backup + tags and len(with_cinder) == 2
    assert matches(skips("enable_service c-api c-sch c-vol c-bak\n")[1]) == tags


def test_the_phase_writes_the_lists_only_with_heat(tmp_path):
    class Ctx:
        def __init__(self, s):
            self.settings = s

        def files_step(self, name, describe, build):
            return name

        def __getattr__(self, name):
            return lambda *a, **k: None

    names = lambda extra: [getattr(step, "name", step) for step in tempest.PHASE.steps(Ctx(
        settings(tmp_path, LOCALRC, extra)))]
    assert "orchestration lists" in names(HEAT)
    assert "orchestration lists" not in names("")


# ---- tools/tempest-smoke.sh --orchestration -----------------------------------------------------
def test_the_gate_set_selects_no_plugin_test():
    """The plugin is in the venv whatever is enabled: the smoke run's selection stays Tempest's."""
    gate = re.compile(script_var("GATE_REGEX"))
    assert not [t for t in PLUGIN if gate.search(t)]
    assert [t for t in TEMPEST if gate.search(t)] == TEMPEST[:2]


def test_the_orchestration_set_is_the_plugin_tests():
    orchestration = re.compile(script_var("ORCHESTRATION_REGEX"))
    assert all(orchestration.search(t) for t in PLUGIN)
    assert not any(orchestration.search(t) for t in TEMPEST)


@pytest.mark.parametrize("test_id", PLUGIN + TEMPEST)
def test_group_regex_is_tempest_s_but_for_gabbi_files(test_id):
    """stestr groups by re.match(...).group(0): a gabbi YAML file's tests (each a step of the one before)
    share one worker; every other test is grouped as Tempest's .stestr.conf groups it (by class)."""
    ours, tempest_own = re.compile(script_var("GABBI_GROUP_REGEX")), re.compile(r"([^\.]*\.)*")
    group = ours.match(test_id).group(0)
    if test_id in GABBI:
        yaml_file = test_id.split(".test_heat_api.")[1].split("_")[0]
        assert group == f"heat_tempest_plugin.tests.api.test_heat_api.{yaml_file}"
    else:
        assert group == tempest_own.match(test_id).group(0)


def test_gabbi_files_keep_apart():
    ours = re.compile(script_var("GABBI_GROUP_REGEX"))
    groups = {ours.match(t).group(0) for t in GABBI}
    assert len(groups) == 4  # stacks (2 tests), resources, resourcetypes, softwareconfig


def test_orchestration_runs_apart_from_the_smoke_workspace():
    # its own directory (own .stestr.conf and stestr repository), its own lists and artifact names
    assert 'RUN_DIR=$TEMPEST_WORKSPACE/orchestration' in SCRIPT
    assert 'TEMPEST_EXCLUDE_LIST=$TEMPEST_ORCHESTRATION_EXCLUDE_LIST' in SCRIPT
    assert 'TEMPEST_EXPECTED_SKIPS=$TEMPEST_ORCHESTRATION_EXPECTED_SKIPS' in SCRIPT
    assert 'NAME=tempest-orchestration' in SCRIPT and '"$ARTIFACTS/$NAME.log"' in SCRIPT
    assert 'settings.is_enabled("h-api")' in SCRIPT
