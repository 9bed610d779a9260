"""Horizon's rendered files: local_settings is Python that says what we mean, uWSGI binds before it
drops privileges, / redirects to the dashboard."""
from __future__ import annotations

import socket
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest

from minstack import templates
from minstack.pipeline import phase_module

horizon = phase_module("horizon")


def fake_settings(**overrides):
    values = dict(base_services_host="127.0.0.1", service_host="10.1.2.3", host_ip="10.1.2.3", stack_user="stack",
                  api_workers=2,
                  data_dir=Path("/opt/stack/data"), venv=Path("/opt/stack/data/venv"),
                  logdir=Path("/opt/stack/logs"), admin_password="x", database_password="y",
                  rabbit_password="z")
    values.update(overrides)
    return SimpleNamespace(**values)


@pytest.fixture
def secret_key_stub(monkeypatch):
    """horizon.utils.secret_key as local_settings imports it, without Horizon installed."""
    read = []
    module = types.ModuleType("horizon.utils.secret_key")
    module.read_from_file = lambda path: read.append(path) or "k" * 64
    package = types.ModuleType("horizon.utils")
    package.secret_key = module
    monkeypatch.setitem(sys.modules, "horizon", types.ModuleType("horizon"))
    monkeypatch.setitem(sys.modules, "horizon.utils", package)
    monkeypatch.setitem(sys.modules, "horizon.utils.secret_key", module)
    return read


def run_python(text: str) -> dict:
    namespace: dict = {}
    exec(compile(text, "<rendered>", "exec"), namespace)
    return namespace


def test_local_settings_is_python_with_our_values(secret_key_stub):
    ns = run_python(horizon.local_settings(fake_settings()))
    assert ns["DEBUG"] is False and ns["COMPRESS_OFFLINE"] is True
    assert ns["WEBROOT"] == "/dashboard/"
    assert ns["OPENSTACK_KEYSTONE_URL"] == "http://10.1.2.3:5000/v3"
    assert ns["SESSION_ENGINE"] == "django.contrib.sessions.backends.cache"
    assert ns["CACHES"]["default"] == {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
                                       "LOCATION": "127.0.0.1:11211"}  # memcached: loopback only
    assert ns["STATIC_ROOT"] == "/opt/stack/data/horizon/static"
    # the key is read from its 0600 file, never written into the settings
    assert secret_key_stub == ["/etc/openstack-dashboard/.secret_key_store"]
    assert ns["SECRET_KEY"] == "k" * 64


def test_allowed_hosts_name_each_address_once(secret_key_stub):
    ns = run_python(horizon.local_settings(fake_settings(host_ip="10.1.2.3")))
    assert ns["ALLOWED_HOSTS"] == ["10.1.2.3", "localhost", socket.gethostname()]
    ns = run_python(horizon.local_settings(fake_settings(host_ip="192.168.5.5")))
    assert ns["ALLOWED_HOSTS"][:3] == ["10.1.2.3", "192.168.5.5", "localhost"]


def test_horizon_url_is_devstacks():
    assert horizon.horizon_url(fake_settings()) == "http://10.1.2.3/dashboard"


def uwsgi_ini() -> str:
    return templates.render("horizon/horizon-uwsgi.ini.j2", fake_settings(), bind="10.1.2.3:80",
                            conf_dir=Path("/etc/openstack-dashboard"), data_dir=Path("/opt/stack/data/horizon"),
                            static_root=Path("/opt/stack/data/horizon/static"), processes=2, threads=4)


def test_uwsgi_binds_port_80_as_root_then_drops_to_stack():
    lines = [line for line in uwsgi_ini().splitlines() if line and not line.startswith("#")]
    assert "shared-socket = 10.1.2.3:80" in lines and "http-socket = =0" in lines
    assert "uid = stack" in lines and "gid = stack" in lines
    # an ordinary http-socket on the address would be bound after the drop: refused on port 80
    assert not [line for line in lines if line.startswith("http-socket = 10.")]


def test_uwsgi_mounts_horizon_at_dashboard_and_serves_its_static_files():
    lines = uwsgi_ini().splitlines()
    assert "mount = /dashboard=openstack_dashboard.wsgi:application" in lines
    assert "manage-script-name = true" in lines
    # manage-script-name strips /dashboard before the static map is looked at
    assert "static-map = /static=/opt/stack/data/horizon/static" in lines
    assert "pythonpath = /etc/openstack-dashboard" in lines
    assert "processes = 2" in lines and "add-header = Connection: close" in lines


@pytest.mark.parametrize("path, status, location", [("/", "302 Found", "/dashboard/"), ("", "302 Found", "/dashboard/"),
                                                    ("/favicon.ico", "404 Not Found", None)])
def test_root_redirect_app(path, status, location):
    app = run_python(templates.render("horizon/root_redirect.py.j2", fake_settings(), webroot="/dashboard/"))
    seen = {}

    def start_response(status_line, headers):
        seen["status"], seen["headers"] = status_line, dict(headers)

    body = b"".join(app["application"]({"PATH_INFO": path}, start_response))
    assert seen["status"] == status and seen["headers"].get("Location") == location
    assert b"/dashboard/" in body
