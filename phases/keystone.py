"""Keystone: config, database, fernet/credential keys, bootstrap, served by uWSGI on port 5000.

Keystone listens at http://$SERVICE_HOST:5000 (served directly by uWSGI,
not behind Apache at /identity as DevStack does): one process fewer, and the
port every OpenStack client knows.
"""
from __future__ import annotations

from pathlib import Path

from minstack import identity, mysql, uwsgi
from minstack.phase import Phase, Step
from minstack.versions import installed_version

ETC = Path("/etc/keystone")
CONF = ETC / "keystone.conf"
UWSGI_INI = ETC / "keystone-uwsgi.ini"


class Keystone(Phase):
    def daemons(self, ctx):
        url = identity.keystone_url(ctx.settings) + "/v3"
        return [uwsgi.daemon(ctx, "keystone", "key", UWSGI_INI, url)]

    def steps(self, ctx):
        s = ctx.settings
        [daemon] = self.daemons(ctx)
        manage = [str(s.venv / "bin" / "keystone-manage"), "--config-file", str(CONF)]
        url = identity.keystone_url(s)

        def write_config():
            ctx.ensure_dir(ETC, owner="root", group=s.stack_user, mode=0o750)
            ctx.render("keystone/keystone.conf.j2", CONF, owner="root", group=s.stack_user, mode=0o640,
                       restarts=("keystone",))

        def key_repository(kind: str):
            # keys owned by the stack user, 0600: only keystone may read them
            ctx.sh.run(manage + [f"{kind}_setup", "--keystone-user", s.stack_user,
                                 "--keystone-group", s.stack_user])

        def bootstrap():
            # the password goes through the environment, not the command line that ps shows
            ctx.sh.run(manage + ["bootstrap", "--bootstrap-username", "admin",
                                 "--bootstrap-project-name", "admin", "--bootstrap-role-name", "admin",
                                 "--bootstrap-service-name", "keystone", "--bootstrap-region-id", identity.REGION,
                                 "--bootstrap-admin-url", url, "--bootstrap-internal-url", url,
                                 "--bootstrap-public-url", url],
                       env={"OS_BOOTSTRAP_PASSWORD": s.admin_password}, user=s.stack_user)

        return [
            Step("config", write_config, f"{CONF} from keystone/keystone.conf.j2 (+ local.conf post-config)"),
            Step("database", lambda: mysql.create_database("keystone"), "create database keystone",
                 check=lambda: mysql.database_exists("keystone")),
            Step("db sync", lambda: ctx.sh.run(manage + ["db_sync"], user=s.stack_user),
                 "keystone-manage db_sync", once_key=installed_version(s.venv, "keystone")),
            Step("fernet keys", lambda: key_repository("fernet"), "keystone-manage fernet_setup",
                 check=lambda: (ETC / "fernet-keys" / "0").exists()),
            Step("credential keys", lambda: key_repository("credential"), "keystone-manage credential_setup",
                 check=lambda: (ETC / "credential-keys" / "0").exists()),
            Step("uwsgi config", lambda: uwsgi.write_config(ctx, "keystone", "keystone.wsgi.api", 5000,
                                                            UWSGI_INI), f"{UWSGI_INI}: keystone.wsgi.api"),
            Step("start", lambda: ctx.start(daemon), f"uWSGI serving Keystone at {url}"),
            Step("bootstrap", bootstrap, "keystone-manage bootstrap: admin, RegionOne, identity endpoints",
                 check=lambda: identity.can_log_in(s, "admin", s.admin_password, "admin")),
        ]

    def summary(self, settings):
        return [("Keystone", identity.keystone_url(settings) + "/v3")]

    def clean(self, ctx):
        ctx.drop_databases("keystone")
        ctx.remove_trees(ETC)


PHASE = Keystone(name="keystone", requires=("mysql", "memcached", "venv"), services=("key",))
