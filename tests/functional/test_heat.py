"""Heat (enable_service heat in tests/functional/localrc): files, the two APIs and the engine, what it
needs in Keystone, and the application developer's story in one template: doc/heat/server-on-the-internet.yaml
makes a security group, a port, a server and a floating IP; the server answers ping and SSH there;
deleting the stack removes all of it."""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from conftest import REPO, bash
from test_instance import ssh, wait_until

TEMPLATE = REPO / "doc" / "heat" / "server-on-the-internet.yaml"
STACK = "minstack-heat-test"


def test_config_files_are_root_stack_0640(host, settings):
    for name in ("heat.conf", "api-paste.ini", "heat-api-uwsgi.ini", "heat-api-cfn-uwsgi.ini"):
        f = host.file(f"/etc/heat/{name}")
        assert (f.user, f.group, f.mode) == ("root", settings.stack_user, 0o640), name
    assert host.file("/etc/heat/environment.d/default.yaml").exists
    assert "deferred_auth_method = trusts" in host.file("/etc/heat/heat.conf").content_string


def test_apis_listen_on_service_host_only(host, settings):
    for port in (8004, 8000):
        assert host.socket(f"tcp://{settings.service_host}:{port}").is_listening
        assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening


def test_keystone_has_what_heat_needs(admin_conn, settings):
    types = {s.type: s.name for s in admin_conn.identity.services()}
    assert types["orchestration"] == "heat" and types["cloudformation"] == "heat-cfn"
    domain = admin_conn.identity.find_domain("heat")
    assert domain is not None and admin_conn.identity.find_user("heat_domain_admin", domain_id=domain.id)
    for role in ("heat_stack_owner", "heat_stack_user"):
        assert admin_conn.identity.find_role(role) is not None


def test_status_shows_the_apis_and_the_engine_running(minstack_cli):
    proc = minstack_cli.stack("status", "--json")
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    for name, service in (("heat-api", "h-api"), ("heat-api-cfn", "h-api-cfn"), ("heat-engine", "h-eng")):
        assert rows[name]["running"] and rows[name]["service"] == service, rows.get(name)
    assert rows["heat-engine"]["code"] == "openstack-heat 27.0.1 (release)"


@pytest.fixture(scope="module")
def heat_stack(test_image):
    started = time.monotonic()
    made = bash(f"source openrc && openstack stack create -t {TEMPLATE} --parameter image={test_image['name']} "
                f"--wait --timeout 10 -f json {STACK}", timeout=900)
    seconds = time.monotonic() - started
    shown = bash(f"source openrc && openstack stack show -f json {STACK}")
    yield made, seconds, json.loads(shown.stdout) if shown.returncode == 0 else {}
    bash(f"source openrc && openstack stack delete --yes --wait {STACK}", timeout=600)


def test_template_reaches_create_complete(heat_stack):
    made, seconds, shown = heat_stack
    assert made.returncode == 0, made.stdout + made.stderr
    assert shown["stack_status"] == "CREATE_COMPLETE", shown.get("stack_status_reason")
    print(f"stack {STACK}: CREATE_COMPLETE after {seconds:.1f} s")


def output(shown: dict, key: str) -> str:
    return next(o["output_value"] for o in shown["outputs"] if o["output_key"] == key)


def test_the_stack_server_answers_ping_and_ssh_on_its_floating_ip(settings, heat_stack):
    _, _, shown = heat_stack
    address = output(shown, "floating_ip")
    assert wait_until(lambda: subprocess.run(["ping", "-c", "1", "-W", "2", address],
                                             capture_output=True).returncode == 0, 180), f"no ping from {address}"
    assert wait_until(lambda: ssh(settings, address, "true").returncode == 0, 180), f"no SSH at {address}"
    assert ssh(settings, address, "uname", "-s").stdout.strip() == "Linux"


def test_stack_delete_removes_everything_it_made(admin_conn, heat_stack):
    _, _, shown = heat_stack
    server_id, address = output(shown, "server_id"), output(shown, "floating_ip")
    gone = bash(f"source openrc && openstack stack delete --yes --wait {STACK}", timeout=600)
    assert gone.returncode == 0, gone.stderr
    assert admin_conn.compute.find_server(server_id, all_projects=True) is None
    assert not list(admin_conn.network.ips(floating_ip_address=address))
    assert not [g for g in admin_conn.network.security_groups() if g.name.startswith(f"{STACK}-security_group")]
