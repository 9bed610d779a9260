"""MariaDB: configured, started (supervised where there is no systemd), root@'%' for the services."""
from __future__ import annotations

from minstack import mysql
from minstack.phase import Phase, Step
from minstack.supervisor import Daemon

CONF = "/etc/mysql/mariadb.conf.d/99-minstack.cnf"


class MySQL(Phase):
    def daemons(self, ctx):
        return [Daemon("mysql", ["/usr/sbin/mariadbd", "--user=mysql"], service="mysql",
                       ready=mysql.ping, stop_timeout=60)]

    def steps(self, ctx):
        s = ctx.settings
        [daemon] = self.daemons(ctx)
        return [
            ctx.files_step("config", f"{CONF}: bind {s.service_host}, skip-name-resolve", lambda: [
                ctx.template("mysql/99-minstack.cnf.j2", CONF, restarts=("mysql",))]),
            ctx.files_step("run dir", "/run/mysqld owned by mysql", lambda: [
                ctx.directory("/run/mysqld", owner="mysql")]),
            ctx.start_step(daemon, "start mariadbd and wait until it answers a ping", name="start"),
            Step("root password", lambda: mysql.ensure_root_password(s.database_password),
                 "root@'%' with DATABASE_PASSWORD, for the services",
                 check=lambda: mysql.service_login_works(s.service_host, s.database_password)),
        ]


PHASE = MySQL(name="mysql", requires=("packages",), debs=("mysql",),
              keep_running_on_unstack=True)
