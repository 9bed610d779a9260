"""Glance: config, database, image store, keystone account, served by uWSGI on port 9292.

glance 33's ``glance-api`` console script only says "Standalone glance-api is
no longer supported": the API runs under uWSGI (module glance.wsgi.api, which
finds glance-api.conf through OS_GLANCE_CONFIG_DIR).  Images live in one
file store under $DATA_DIR/glance/images, owned by the stack user.
"""
from __future__ import annotations

from pathlib import Path

from minstack import identity, mysql, uwsgi
from minstack.versions import installed_version
from minstack.phase import Phase, Step
from minstack.templates import PORTS

ETC = Path("/etc/glance")
CONF = ETC / "glance-api.conf"
PASTE = ETC / "glance-api-paste.ini"
UWSGI_INI = ETC / "glance-uwsgi.ini"
DAEMON = "glance-api"
# Directories under $DATA_DIR/glance the stack user writes: the image store, the
# reserved stores glance stages imports and tasks in (see glance-api.conf.j2), its locks.
STATE_DIRS = ("images", "os_glance_staging_store", "os_glance_tasks_store", "locks")


def glance_url(settings) -> str:
    return f"http://{settings.service_host}:{PORTS['glance']}"


class Glance(Phase):
    def daemons(self, ctx):
        return [uwsgi.daemon(ctx, DAEMON, "g-api", UWSGI_INI, glance_url(ctx.settings) + "/")]

    def steps(self, ctx):
        s = ctx.settings
        [daemon] = self.daemons(ctx)
        url = glance_url(s)
        data = s.data_dir / "glance"
        manage = [str(s.venv / "bin" / "glance-manage"), "--config-file", str(CONF)]

        def state_dirs():
            ctx.ensure_dir(data, owner=s.stack_user, mode=0o750)
            for name in STATE_DIRS:
                ctx.ensure_dir(data / name, owner=s.stack_user, mode=0o750)

        def write_config():
            ctx.ensure_dir(ETC, owner="root", group=s.stack_user, mode=0o750)
            # The paste pipelines ship in the wheel; glance-api.conf points [paste_deploy] at this copy.
            paste = (s.venv / "etc" / "glance" / PASTE.name).read_bytes()
            if ctx.write_file(PASTE, paste, owner="root", group=s.stack_user, mode=0o640):
                ctx.restart.add(DAEMON)
            ctx.render("glance/glance-api.conf.j2", CONF, owner="root", group=s.stack_user, mode=0o640,
                       restarts=(DAEMON,), conf_dir=ETC, lock_path=data / "locks")

        def account():
            identity.ensure_service_account(s, identity.admin_connection(s), "glance", "glance", "image",
                                            "Glance Image Service", url)

        return [
            Step("state dirs", state_dirs, f"{data}/{{{','.join(STATE_DIRS)}}} owned by {s.stack_user}"),
            Step("config", write_config, f"{PASTE} from the wheel; {CONF} from glance/glance-api.conf.j2 "
                                         "(+ local.conf post-config)"),
            Step("database", lambda: mysql.create_database("glance"), "create database glance",
                 check=lambda: mysql.database_exists("glance")),
            Step("db sync", lambda: ctx.sh.run(manage + ["db_sync"], user=s.stack_user),
                 "glance-manage db_sync", once_key=installed_version(s.venv, "glance")),
            Step("uwsgi config", lambda: uwsgi.write_config(ctx, DAEMON, "glance.wsgi.api", PORTS["glance"],
                                                            UWSGI_INI, env={"OS_GLANCE_CONFIG_DIR": str(ETC)}),
                 f"{UWSGI_INI}: glance.wsgi.api"),
            # before start: once the API answers, it can also check the tokens it is sent
            Step("keystone account", account, f"user glance, service glance (image), endpoints {url}"),
            Step("start", lambda: ctx.start(daemon), f"uWSGI serving Glance at {url}"),
        ]

    def summary(self, settings):
        return [("Glance", glance_url(settings))]

    def clean(self, ctx):
        ctx.drop_databases("glance")
        ctx.remove_trees(ETC, ctx.settings.data_dir / "glance")


# After accounts: the service project exists, so parallel phases never race to create it.
PHASE = Glance(name="glance", requires=("mysql", "memcached", "venv", "accounts"), services=("g-api",))
