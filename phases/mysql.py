"""MariaDB: configured, started (supervised where there is no systemd), one account per service.

MariaDB listens on BASE_SERVICES_HOST (loopback by default: nothing off this host uses it).
There is no root login over TCP; minstack itself administers it over the unix socket.
"""
from __future__ import annotations

from pathlib import Path

from minstack import mysql
from minstack.derived_secrets import database_password
from minstack.phase import Phase, Step
from minstack.supervisor import Daemon

CONF = "/etc/mysql/mariadb.conf.d/99-minstack.cnf"


def enabled_accounts(settings) -> dict[str, tuple[str, ...]]:
    """account -> its databases, for the services this stack runs."""
    return {account: databases for account, (services, databases) in mysql.accounts().items()
            if settings.is_enabled(*services)}


def remote_root_hosts() -> list[str]:
    """root accounts that log in over the network (older minstack made root@'%')."""
    return [host for host in mysql.account_hosts("root") if host != "localhost"]


class MySQL(Phase):
    def daemons(self, ctx):
        return [Daemon("mysql", ["/usr/sbin/mariadbd", "--user=mysql"], service="mysql",
                       ready=mysql.ping, stop_timeout=60, distro_units=("mariadb.service",))]

    def steps(self, ctx):
        s = ctx.settings
        host = s.base_services_host
        [daemon] = self.daemons(ctx)
        accounts = enabled_accounts(s)

        def ensure_accounts():
            for account, databases in accounts.items():
                mysql.ensure_account(account, database_password(s, account), host, databases)

        def accounts_work():
            return all(mysql.account_login_works(account, database_password(s, account), host, databases)
                       for account, databases in accounts.items())

        return [
            ctx.files_step("config", f"{CONF}: bind {host}, skip-name-resolve", lambda: [
                ctx.template("mysql/99-minstack.cnf.j2", CONF, restarts=("mysql",))]),
            ctx.files_step("run dir", "/run/mysqld owned by mysql", lambda: [
                ctx.directory("/run/mysqld", owner="mysql")]),
            ctx.start_step(daemon, "start mariadbd and wait until it answers a ping", name="start"),
            Step("no remote root", lambda: mysql.drop_account("root", keep_host="localhost"),
                 "root logs in over the unix socket only (no root@'%')", check=lambda: not remote_root_hosts()),
            Step("service accounts", ensure_accounts,
                 f"{', '.join(accounts)}: each @{host}, ALL on its own databases only",
                 check=accounts_work),
        ]

    def clean(self, ctx):
        """Every service's databases and account (any host), root@'%', then the drop-in.  A MariaDB
        stopped by ./unstack.py --all is started for that (./unstack.py --clean stops it again)."""
        if Path("/var/lib/mysql/mysql").is_dir():  # MariaDB is installed
            try:
                self.drop_what_minstack_made(ctx)
            except Exception as exc:  # MariaDB cannot start: say so rather than pretend
                ctx.log.warning("could not drop MariaDB's service databases and accounts: %s", exc)
        ctx.remove_files(CONF)

    def drop_what_minstack_made(self, ctx):
        if not _answers():
            ctx.ensure_dir("/run/mysqld", owner="mysql")
            ctx.start(self.daemons(ctx)[0])
        for account, (_, databases) in mysql.accounts().items():
            for name in databases:
                mysql.drop_database(name)
            for host in mysql.drop_account(account):
                ctx.log.info("dropped MariaDB account %s@%s", account, host)
        for host in mysql.drop_account("root", keep_host="localhost"):
            ctx.log.info("dropped MariaDB account root@%s", host)


def _answers() -> bool:
    try:
        return mysql.ping()
    except Exception:
        return False


PHASE = MySQL(name="mysql", requires=("packages",), debs=("mysql",),
              keep_running_on_unstack=True)
