"""Keystone from source: config and keys, the CLI through openrc and clouds.yaml, accounts like DevStack."""
from __future__ import annotations

import pytest

from conftest import REPO, bash


def test_keystone_files_are_owned_and_moded(host, settings):
    conf = host.file("/etc/keystone/keystone.conf")
    assert (conf.user, conf.group, conf.mode) == ("root", settings.stack_user, 0o640)
    assert host.file("/etc/keystone").mode == 0o750
    for repo in ("fernet-keys", "credential-keys"):
        keys = host.file(f"/etc/keystone/{repo}/0")
        assert keys.user == settings.stack_user and keys.mode == 0o600
    uwsgi = host.file("/etc/keystone/keystone-uwsgi.ini")
    assert "module = keystone.wsgi.api" in uwsgi.content_string


def test_keystone_runs_as_stack_user_under_uwsgi(host, settings):
    procs = [p for p in host.process.filter(comm="uwsgi") if "/etc/keystone/" in p.args]
    assert procs and {p.user for p in procs} == {settings.stack_user}
    # the master plus API_WORKERS workers
    assert len(procs) == 1 + settings.api_workers


def test_credential_files(host, settings):
    openrc = host.file(str(REPO / "openrc"))
    assert openrc.mode == 0o600
    clouds = host.file("/etc/openstack/clouds.yaml")
    assert (clouds.user, clouds.group, clouds.mode) == ("root", settings.stack_user, 0o640)


@pytest.mark.parametrize("how", ["source openrc admin admin", "export OS_CLOUD=devstack-admin"])
def test_token_issue(how):
    proc = bash(f"{how} && openstack token issue -f value -c id")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip()) > 20


def test_demo_user_logs_in_to_its_project(admin_conn):
    proc = bash("source openrc && openstack token issue -f value -c project_id")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == admin_conn.identity.find_project("demo", domain_id="default").id


def test_identity_endpoints_as_bootstrapped(settings):
    proc = bash("source openrc admin admin && openstack endpoint list --service identity "
                "-f value -c Interface -c URL -c Region")
    assert proc.returncode == 0, proc.stderr
    rows = sorted(tuple(line.split()) for line in proc.stdout.splitlines())
    url = f"http://{settings.service_host}:5000"
    assert rows == [("RegionOne", "admin", url), ("RegionOne", "internal", url), ("RegionOne", "public", url)]


def test_devstack_accounts(admin_conn):
    projects = {p.name for p in admin_conn.identity.projects()}
    assert {"admin", "demo", "alt_demo", "service"} <= projects
    roles = {r.name for r in admin_conn.identity.roles()}
    assert {"admin", "member", "reader", "service"} <= roles
    users = {u.name for u in admin_conn.identity.users()}
    assert {"admin", "demo", "alt_demo"} <= users


def test_every_devstack_cloud_name_works():
    for cloud in ("devstack", "devstack-alt", "devstack-admin", "devstack-system-admin"):
        proc = bash(f"openstack --os-cloud {cloud} token issue -f value -c id")
        assert proc.returncode == 0, (cloud, proc.stderr)
