"""Keystone: config, database, fernet/credential keys, bootstrap, served by uWSGI (catalogue: port 5000).

Keystone listens at http://$SERVICE_HOST:5000 (served directly by uWSGI,
not behind Apache at /identity as DevStack does): one process fewer, and the
port every OpenStack client knows.  It makes its own catalog entry and admin
account with ``keystone-manage bootstrap`` instead of the shape's account step.
"""
from __future__ import annotations

from minstack import catalogue, identity
from minstack.apiservice import ApiService
from minstack.phase import Step


class Keystone(ApiService):
    project = "keystone"

    def configure(self, ctx):
        s = ctx.settings
        return [ctx.directory(self.etc, owner="root", group=s.stack_user, mode=0o750),
                ctx.template("keystone/keystone.conf.j2", self.conf(s), **self.private(s), restarts=("keystone",))]

    def manage(self, s) -> list[str]:
        return [str(s.venv / "bin" / "keystone-manage"), "--config-file", str(self.conf(s))]

    def db_steps(self, ctx):
        return [self.sync(ctx, "db sync", "db_sync")]

    def after_sync(self, ctx):
        s = ctx.settings

        def key_repository(kind: str):
            # keys owned by the stack user, 0600: only keystone may read them
            ctx.sh.run(self.manage(s) + [f"{kind}_setup", "--keystone-user", s.stack_user,
                                         "--keystone-group", s.stack_user])

        return [Step(f"{kind} keys", lambda kind=kind: key_repository(kind), f"keystone-manage {kind}_setup",
                     check=lambda kind=kind: (self.etc / f"{kind}-keys" / "0").exists())
                for kind in ("fernet", "credential")]

    def account_steps(self, ctx):
        return []  # bootstrap (after start) makes Keystone's own catalog entry and the admin account

    def after_start(self, ctx):
        s = ctx.settings
        url = catalogue.keystone_url(s)

        def bootstrap():
            # the password goes through the environment, not the command line that ps shows
            ctx.sh.run(self.manage(s) + [
                "bootstrap", "--bootstrap-username", "admin", "--bootstrap-project-name", "admin",
                "--bootstrap-role-name", "admin", "--bootstrap-service-name", "keystone",
                "--bootstrap-region-id", identity.REGION, "--bootstrap-admin-url", url,
                "--bootstrap-internal-url", url, "--bootstrap-public-url", url],
                env={"OS_BOOTSTRAP_PASSWORD": s.admin_password}, user=s.stack_user)

        return [Step("bootstrap", bootstrap, "keystone-manage bootstrap: admin, RegionOne, identity endpoints",
                     check=lambda: identity.can_log_in(s, "admin", s.admin_password, "admin"))]

    def summary(self, settings):
        return [("Keystone", catalogue.keystone_url(settings) + "/v3")]


PHASE = Keystone(name="keystone", requires=("mysql", "memcached", "venv"))
