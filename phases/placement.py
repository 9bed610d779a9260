"""Placement: config, database, keystone account, served by uWSGI on port 8778.

Nova's scheduler asks Placement which compute nodes have room; Placement
keeps the inventories and allocations.  It has no paste file and no policy
file to copy (policy is in code): one config file, one database, one API.
"""
from __future__ import annotations

from pathlib import Path

from minstack import identity, mysql, uwsgi
from minstack.versions import installed_version
from minstack.phase import Phase, Step
from minstack.templates import PORTS

ETC = Path("/etc/placement")
CONF = ETC / "placement.conf"
UWSGI_INI = ETC / "placement-uwsgi.ini"
DAEMON = "placement-api"


def placement_url(settings) -> str:
    return f"http://{settings.service_host}:{PORTS['placement']}"


class Placement(Phase):
    def daemons(self, ctx):
        return [uwsgi.daemon(ctx, DAEMON, "placement-api", UWSGI_INI, placement_url(ctx.settings) + "/")]

    def steps(self, ctx):
        s = ctx.settings
        [daemon] = self.daemons(ctx)
        url = placement_url(s)
        manage = [str(s.venv / "bin" / "placement-manage"), "--config-file", str(CONF)]

        def write_config():
            ctx.ensure_dir(ETC, owner="root", group=s.stack_user, mode=0o750)
            ctx.render("placement/placement.conf.j2", CONF, owner="root", group=s.stack_user, mode=0o640,
                       restarts=(DAEMON,))

        def account():
            identity.ensure_service_account(s, identity.admin_connection(s), "placement", "placement",
                                            "placement", "Placement Service", url)

        return [
            Step("config", write_config, f"{CONF} from placement/placement.conf.j2 (+ local.conf post-config)"),
            Step("database", lambda: mysql.create_database("placement"), "create database placement",
                 check=lambda: mysql.database_exists("placement")),
            Step("db sync", lambda: ctx.sh.run(manage + ["db", "sync"], user=s.stack_user),
                 "placement-manage db sync", once_key=installed_version(s.venv, "openstack_placement")),
            # placement.wsgi.api finds placement.conf through OS_PLACEMENT_CONFIG_DIR
            Step("uwsgi config", lambda: uwsgi.write_config(ctx, DAEMON, "placement.wsgi.api", PORTS["placement"],
                                                            UWSGI_INI, env={"OS_PLACEMENT_CONFIG_DIR": str(ETC)}),
                 f"{UWSGI_INI}: placement.wsgi.api"),
            # before start: once the API answers, it can also check the tokens it is sent
            Step("keystone account", account, f"user placement, service placement, endpoints {url}"),
            Step("start", lambda: ctx.start(daemon), f"uWSGI serving Placement at {url}"),
        ]

    def summary(self, settings):
        return [("Placement", placement_url(settings))]

    def clean(self, ctx):
        ctx.drop_databases("placement")
        ctx.remove_trees(ETC)


# After accounts: the service project exists, so parallel phases never race to create it.
PHASE = Placement(name="placement", requires=("mysql", "memcached", "venv", "accounts"),
                  services=("placement-api",))
