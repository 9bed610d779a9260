"""MariaDB access from minstack itself, through pymysql (no mysql CLI round trips).

minstack administers the server as the OS root user over the unix socket
(MariaDB's unix_socket authentication).  There is no root login over TCP: each
service connects as its own account (``keystone``, ``nova``, ...), which holds
every privilege on its own databases and nothing else, only from the address
the services connect from (BASE_SERVICES_HOST), with a password derived from
DATABASE_PASSWORD (:func:`minstack.derived_secrets.database_password`).
"""
from __future__ import annotations

import contextlib

import pymysql

from minstack import catalogue

SOCKET = "/run/mysqld/mysqld.sock"

def accounts() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """account -> (the DevStack services that use it, its databases): one account per catalogue
    project that has databases (plugins' included), named after the project (minstack/catalogue.py)."""
    return {project.name: (tuple(project.services), project.databases)
            for project in catalogue.projects() if project.databases}


def account_for(database: str) -> str:
    """The account that owns a database (nova_cell1 -> nova)."""
    for account, (_, databases) in accounts().items():
        if database in databases:
            return account
    return database.split("_")[0]


@contextlib.contextmanager
def admin_connection():
    conn = pymysql.connect(unix_socket=SOCKET, user="root", connect_timeout=5, autocommit=True)
    try:
        yield conn
    finally:
        conn.close()


def ping() -> bool:
    with admin_connection() as conn:
        conn.ping()
    return True


def account_login_works(user: str, password: str, host: str, databases: tuple[str, ...]) -> bool:
    """user logs in over TCP with this password and holds every privilege on each of its databases."""
    try:
        conn = pymysql.connect(host=host, user=user, password=password, connect_timeout=5)
    except pymysql.MySQLError:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GRANTS FOR CURRENT_USER()")
            grants = " ".join(row[0] for row in cur.fetchall())
    finally:
        conn.close()
    return all(f"GRANT ALL PRIVILEGES ON `{name}`.*" in grants for name in databases)


def ensure_account(user: str, password: str, host: str, databases: tuple[str, ...]) -> None:
    """user@host with this password and ALL on its databases only (they may not exist yet)."""
    _check_identifier(user)
    with admin_connection() as conn, conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (user, host, password))
        cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (user, host, password))
        for name in databases:
            _check_identifier(name)
            cur.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO %s@%s", (user, host))


def account_hosts(user: str) -> list[str]:
    """The hosts an account exists for (user@'127.0.0.1', user@'%', ...)."""
    with admin_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT Host FROM mysql.user WHERE User = %s", (user,))
        return sorted(row[0] for row in cur.fetchall())


def drop_account(user: str, keep_host: str | None = None) -> list[str]:
    """Drop user at every host (but keep_host); the hosts dropped."""
    dropped = [host for host in account_hosts(user) if host != keep_host]
    with admin_connection() as conn, conn.cursor() as cur:
        for host in dropped:
            cur.execute("DROP USER %s@%s", (user, host))
    return dropped


def database_exists(name: str) -> bool:
    with admin_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (name,))
        return cur.fetchone() is not None


def create_database(name: str) -> None:
    """Create the database if missing. A database that exists is kept, with its data."""
    _check_identifier(name)
    with admin_connection() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")


def drop_database(name: str) -> None:
    """Only ./unstack.py --clean drops databases."""
    _check_identifier(name)
    with admin_connection() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def _check_identifier(name: str) -> None:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a safe database name: {name!r}")
