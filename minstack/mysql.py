"""MariaDB access from minstack itself, through pymysql (no mysql CLI round trips).

minstack administers the server as the OS root user over the unix socket
(MariaDB's unix_socket authentication); the services connect over TCP as
root@'%' with DATABASE_PASSWORD, as in DevStack.
"""
from __future__ import annotations

import contextlib

import pymysql

SOCKET = "/run/mysqld/mysqld.sock"


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


def service_login_works(host: str, password: str) -> bool:
    """root logs in over TCP with this password and holds every privilege (what the services need)."""
    try:
        conn = pymysql.connect(host=host, user="root", password=password, connect_timeout=5)
    except pymysql.MySQLError:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GRANTS FOR CURRENT_USER()")
            grants = " ".join(row[0] for row in cur.fetchall())
    finally:
        conn.close()
    return "GRANT ALL PRIVILEGES ON *.* TO" in grants and "WITH GRANT OPTION" in grants


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


def ensure_root_password(password: str) -> None:
    """root@'%' with the configured password, for the services' TCP connections."""
    with admin_connection() as conn, conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'root'@'%%' IDENTIFIED BY %s", (password,))
        cur.execute("ALTER USER 'root'@'%%' IDENTIFIED BY %s", (password,))
        cur.execute("GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION")  # no params: plain %


def _check_identifier(name: str) -> None:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a safe database name: {name!r}")
