"""heat-tempest-plugin (issue 13): installed from Tempest's lock and configured in tempest.conf's
[heat_plugin] when Heat is stacked (no cloud needed: the lookups are given)."""
from __future__ import annotations

import re

from minstack.paths import REQUIREMENTS
from test_tempest_config import LOCALRC, rendered, settings, tempest

HEAT = "enable_service heat\n"


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
