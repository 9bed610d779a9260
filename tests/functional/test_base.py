"""MariaDB, RabbitMQ, memcached: packages, processes, users, ports, files (testinfra on the local host)."""
from __future__ import annotations

from pathlib import Path

import psutil
import pymysql
import pytest

import fingerprint
from conftest import REPO
from minstack import mysql
from phases_import import rabbit_phase

LISTEN = {"mysql": 3306, "rabbit": 5672, "memcached": 11211}  # on BASE_SERVICES_HOST
TABLE_HEADING = "## What listens where, and why"


def listening_table() -> list[dict[str, str]]:
    """The README's table "what listens where, and why", one dict per row."""
    text = (REPO / "README.md").read_text()
    assert TABLE_HEADING in text, "the README has no table of what listens where"
    rows = []
    for line in text.split(TABLE_HEADING, 1)[1].split("\n## ", 1)[0].splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] not in ("address", "") and not set(cells[0]) <= {"-"}:
            rows.append(dict(zip(("address", "port", "program", "what", "why"), cells)))
    return rows


def row_matches(row: dict[str, str], socket_line: str, settings) -> bool:
    """socket_line is fingerprint.listening()'s "tcp 127.0.0.1:3306 mariadbd"."""
    proto, endpoint, program = socket_line.split(" ", 2)
    address, port = endpoint.rsplit(":", 1)
    addresses = {"loopback": {"127.0.0.1", "::1"}, "SERVICE_HOST": {settings.service_host},
                 "BASE_SERVICES_HOST": {settings.base_services_host}, "0.0.0.0": {"0.0.0.0"}}[row["address"]]
    ports, row_proto = row["port"].split("/")
    low, _, high = ports.partition("-")
    if ports == "ephemeral":  # a port the kernel picked (net.ipv4.ip_local_port_range)
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return (proto == row_proto and address in addresses and int(low) <= int(port) <= int(high or low)
            and program == row["program"])


def test_every_listening_socket_is_in_the_readme_table_and_every_row_listens(settings, host_before):
    """Every socket the stack opened (all of the daemons' without --stack) is a row of the README's
    table, and every row listens (the verification instance runs, so its VNC console is there)."""
    if host_before is not None:
        now = fingerprint.listening(dest=settings.dest, users=(settings.stack_user,))
        new = sorted(set(now) - set(host_before["listening"]))
    else:
        # and the guests: libvirt's qemu is a child of PID 1 but not a session leader
        guests = {p.pid for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("qemu-system")}
        new = fingerprint.listening(pids={p.pid for p in fingerprint.daemons()} | guests)
    rows = listening_table()
    assert len(rows) >= 15
    unexplained = [line for line in new if not any(row_matches(row, line, settings) for row in rows)]
    silent = [f"{row['address']} {row['port']} {row['program']}" for row in rows
              if not any(row_matches(row, line, settings) for line in new)]
    assert not unexplained, f"listening, but not in the README's table: {unexplained}"
    assert not silent, f"in the README's table, but not listening: {silent}"


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
def test_base_service_listens_on_base_services_host_only(host, settings, service):
    port = LISTEN[service]
    assert settings.base_services_host == "127.0.0.1"  # the default: nothing off this host uses them
    assert host.socket(f"tcp://{settings.base_services_host}:{port}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening
    assert not host.socket(f"tcp://:::{port}").is_listening


def test_no_mariadb_root_over_tcp(settings):
    from minstack.derived_secrets import database_password
    for password in (settings.database_password, database_password(settings, "keystone"), ""):
        with pytest.raises(pymysql.err.OperationalError):
            pymysql.connect(host=settings.base_services_host, user="root", password=password)
    with mysql.admin_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT Host FROM mysql.user WHERE User = 'root'")
        assert [row[0] for row in cur.fetchall()] == ["localhost"]


@pytest.mark.parametrize("account", ["keystone", "glance", "placement", "nova", "neutron"])
def test_each_service_account_reaches_its_own_databases_only(settings, account):
    from minstack.derived_secrets import database_password
    [databases] = [dbs for name, (_, dbs) in mysql.accounts().items() if name == account]
    conn = pymysql.connect(host=settings.base_services_host, user=account,
                           password=database_password(settings, account))
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        visible = {row[0] for row in cur.fetchall()} - {"information_schema"}
        assert visible == set(databases)
        cur.execute("SHOW GRANTS FOR CURRENT_USER()")
        grants = [row[0] for row in cur.fetchall()]
    conn.close()
    assert not any("ON *.*" in g and "USAGE" not in g for g in grants), grants
    assert not any("WITH GRANT OPTION" in g for g in grants), grants
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host=settings.base_services_host, user=account, password=settings.database_password)
    with mysql.admin_connection() as admin, admin.cursor() as cur:
        cur.execute("SELECT Host FROM mysql.user WHERE User = %s", (account,))
        assert [row[0] for row in cur.fetchall()] == [settings.base_services_host]
    assert mysql.database_exists(databases[0])


def test_rabbit_amqp_login(settings):
    assert rabbit_phase().amqp_login_works(settings.base_services_host, settings.rabbit_password)
    assert not rabbit_phase().amqp_login_works(settings.base_services_host, "not-the-password")


def test_memcached_answers(settings):
    import socket
    with socket.create_connection((settings.base_services_host, 11211), timeout=3) as s:
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
