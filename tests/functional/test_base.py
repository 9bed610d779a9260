"""MariaDB, RabbitMQ, memcached: packages, processes, users, ports, files (testinfra on the local host)."""
from __future__ import annotations

import psutil
import pymysql
import pytest

from minstack import mysql
from phases_import import rabbit_phase

LISTEN = {"mysql": 3306, "rabbit": 5672, "memcached": 11211, "keystone": 5000}


@pytest.mark.parametrize("package", ["mariadb-server", "rabbitmq-server", "memcached", "libvirt-dev",
                                     "python3-venv"])
def test_package_installed(host, package):
    assert host.package(package).is_installed


@pytest.mark.parametrize("name, user", [("mariadbd", "mysql"), ("beam.smp", "rabbitmq"), ("epmd", "rabbitmq"),
                                        ("memcached", "memcache")])
def test_base_daemon_runs_as_its_own_user(host, name, user):
    procs = host.process.filter(comm=name)
    assert procs, f"no {name} process"
    assert {p.user for p in procs} == {user}


@pytest.mark.parametrize("service", list(LISTEN))
def test_port_listens_on_service_host_only(host, settings, service):
    port = LISTEN[service]
    assert host.socket(f"tcp://{settings.service_host}:{port}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening
    assert not host.socket(f"tcp://:::{port}").is_listening


def test_nothing_of_ours_listens_beyond_service_host_and_loopback(settings):
    """Every listening socket of every minstack daemon is on SERVICE_HOST or loopback."""
    from minstack.cli import make_context_factory
    from minstack.pipeline import load_phases, select
    from minstack.state import State
    from minstack.supervisor import make_supervisor
    sup = make_supervisor(settings.state_dir / "run", settings.logdir)
    make = make_context_factory(settings, State(settings.state_dir / "state.json"), sup, to_file=False)
    seen = {}
    for phase in select(load_phases(), settings):
        for daemon in phase.daemons(make(phase)):
            status = sup.status(daemon)
            assert status.running, f"{daemon.name} is not running"
            seen[daemon.name] = status.ports
    allowed = {settings.service_host, "127.0.0.1", "::1"}
    stray = {name: [p for p in ports if p.rsplit(":", 1)[0] not in allowed] for name, ports in seen.items()}
    assert not any(stray.values()), stray
    assert {"mysql", "rabbitmq", "epmd", "memcached", "keystone"} <= set(seen)


def test_mariadb_root_over_tcp_with_password(settings):
    conn = pymysql.connect(host=settings.service_host, user="root", password=settings.database_password)
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    conn.close()
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host=settings.service_host, user="root", password="wrong")
    assert mysql.database_exists("keystone")


def test_rabbit_amqp_login(settings):
    assert rabbit_phase().amqp_login_works(settings.service_host, settings.rabbit_password)
    assert not rabbit_phase().amqp_login_works(settings.service_host, "not-the-password")


def test_memcached_answers(settings):
    import socket
    with socket.create_connection((settings.service_host, 11211), timeout=3) as s:
        s.sendall(b"version\r\n")
        assert s.recv(100).startswith(b"VERSION ")


def test_secrets_file_and_state_dir_are_private(host, settings):
    passwords = host.file(str(settings.state_dir / "passwords"))
    assert passwords.exists and passwords.mode == 0o600 and passwords.user == "root"
    assert host.file(str(settings.state_dir)).mode == 0o700
    assert "RABBIT_PASSWORD" in passwords.content_string and "SERVICE_PASSWORD" in passwords.content_string


def test_daemons_are_not_root_owned_where_they_need_not_be():
    """No OpenStack process runs as root."""
    for p in psutil.process_iter(["name", "username", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "uwsgi" in cmd and "/etc/keystone" in cmd:
            assert p.info["username"] != "root", cmd
