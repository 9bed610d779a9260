"""Barbican: config, database, Keystone account, API under uWSGI (catalogue entry: ../plugin.py).

Secrets are stored by the simple_crypto plugin: encrypted in Barbican's own
database with a key-encryption key (KEK) derived from SERVICE_PASSWORD, so a
re-stack decrypts what an earlier stack stored and the KEK is never stored
anywhere but barbican.conf (root:stack 0640).  No worker, no keystone listener:
storing and reading secrets needs neither (orders would).
"""
from __future__ import annotations

from minstack.apiservice import ApiService
from minstack.derived_secrets import service_key


class Barbican(ApiService):
    project = "barbican"

    def configure(self, ctx):
        s = ctx.settings
        restarts = ("barbican-api",)
        return [ctx.directory(self.etc, owner="root", group=s.stack_user, mode=0o750),
                # barbican.api.app reads this very path, whatever its config says
                ctx.copy(self.shipped(s, "barbican-api-paste.ini"), self.etc / "barbican-api-paste.ini",
                         **self.private(s), restarts=restarts),
                ctx.template("barbican/barbican.conf.j2", self.conf(s), **self.private(s), restarts=restarts,
                             kek=service_key(s, "barbican simple_crypto KEK"))]

    def db_steps(self, ctx):
        return [self.sync(ctx, "db upgrade", "db", "upgrade")]


PHASE = Barbican(name="barbican", requires=("mysql", "memcached", "rabbit", "venv", "accounts"))
