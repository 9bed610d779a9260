"""minstack's example plugin, Barbican, enabled from a local path (tests/functional/localrc:
enable_plugin barbican $TOP_DIR/plugins/barbican): stacked, answering, in status, restart and logs like
a built-in.  unstack and --clean are the lifecycle tests' (test_zz_lifecycle.py), for every phase."""
from __future__ import annotations

import json
import secrets

import pytest

from conftest import bash

ETC = "/etc/barbican"


@pytest.fixture(scope="module")
def plugin(settings):
    found = [p for p in settings.plugins if p.name == "barbican"]
    assert found, "tests/functional/localrc enables no barbican plugin"
    return found[0]


def test_the_plugin_is_used_in_place(plugin):
    from minstack.paths import REPO
    assert plugin.root == REPO / "plugins" / "barbican"
    assert plugin.source == str(REPO / "plugins" / "barbican")   # $TOP_DIR/plugins/barbican, expanded


def test_config_files_are_root_stack_0640(host, settings, plugin):
    directory = host.file(ETC)
    assert (directory.user, directory.group, directory.mode) == ("root", settings.stack_user, 0o750)
    for name in ("barbican.conf", "barbican-api-paste.ini", "barbican-api-uwsgi.ini"):
        f = host.file(f"{ETC}/{name}")
        assert (f.user, f.group, f.mode) == ("root", settings.stack_user, 0o640), name
    conf = host.file(f"{ETC}/barbican.conf").content_string
    assert "enabled_crypto_plugins = simple_crypto" in conf and "\nkek = " in conf
    assert "module = barbican.wsgi.api" in host.file(f"{ETC}/barbican-api-uwsgi.ini").content_string


def test_api_listens_on_service_host_only(host, settings):
    assert host.socket(f"tcp://{settings.service_host}:9311").is_listening
    assert not host.socket("tcp://0.0.0.0:9311").is_listening


def test_keystone_catalog_has_the_key_manager(admin_conn, settings):
    [service] = [s for s in admin_conn.identity.services() if s.type == "key-manager"]
    assert service.name == "barbican"
    urls = {e.interface: e.url for e in admin_conn.identity.endpoints(service_id=service.id)}
    assert urls == {i: f"http://{settings.service_host}:9311" for i in ("public", "internal", "admin")}


def test_a_secret_round_trips_through_the_cli_as_the_demo_user():
    payload = f"minstack-{secrets.token_hex(8)}"
    stored = bash(f"source openrc && openstack secret store --name plugin-test --payload {payload} "
                  "-f value -c 'Secret href'")
    assert stored.returncode == 0, stored.stderr
    href = stored.stdout.strip()
    assert href.startswith("http://") and "/v1/secrets/" in href
    try:
        got = bash(f"source openrc && openstack secret get --payload -f value -c Payload {href}")
        assert got.returncode == 0, got.stderr
        assert got.stdout.strip() == payload
    finally:
        deleted = bash(f"source openrc && openstack secret delete {href}")
        assert deleted.returncode == 0, deleted.stderr


def test_status_shows_the_plugin_daemon_and_its_release(minstack_cli, plugin):
    proc = minstack_cli.stack("status", "--json")
    assert proc.returncode == 0, proc.stderr
    [row] = [r for r in json.loads(proc.stdout) if r["name"] == "barbican-api"]
    assert row["running"] and row["service"] == "barbican-svc" and row["code"] == "barbican 23.0.0 (release)"
    text = minstack_cli.stack("status").stdout
    assert f"plugin: barbican from {plugin.root} (services: barbican-svc)" in " ".join(text.split())


def test_restart_and_logs_by_devstack_name(minstack_cli, settings):
    from test_zy_plan_and_resume import restart_alone
    restart_alone(minstack_cli, settings, "barbican-svc", "barbican-api")
    logs = minstack_cli.stack("logs", "barbican-svc", "-n", "5")
    assert logs.returncode == 0 and 0 < len(logs.stdout.splitlines()) <= 5
    assert bash("source openrc && openstack secret list -f value").returncode == 0   # it answers again
