"""Placement: config, database, keystone account, served by uWSGI (catalogue: port 8778).

Nova's scheduler asks Placement which compute nodes have room; Placement
keeps the inventories and allocations.  It has no paste file and no policy
file to copy (policy is in code): one config file, one database, one API.
placement.wsgi.api reads placement.conf in OS_PLACEMENT_CONFIG_DIR.
"""
from __future__ import annotations

from minstack.apiservice import ApiService


class Placement(ApiService):
    project = "placement"

    def configure(self, ctx):
        s = ctx.settings
        return [ctx.directory(self.etc, owner="root", group=s.stack_user, mode=0o750),
                ctx.template("placement/placement.conf.j2", self.conf(s), **self.private(s),
                             restarts=("placement-api",))]

    def db_steps(self, ctx):
        return [self.sync(ctx, "db sync", "db", "sync")]


# After accounts: the service project exists, so parallel phases never race to create it.
PHASE = Placement(name="placement", requires=("mysql", "memcached", "venv", "accounts"))
