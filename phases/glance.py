"""Glance: config, database, image store, keystone account, served by uWSGI (catalogue: port 9292).

glance 33's ``glance-api`` console script only says "Standalone glance-api is
no longer supported": the API runs under uWSGI (module glance.wsgi.api, which
reads glance-api.conf in OS_GLANCE_CONFIG_DIR).  Images live in one file store
under $DATA_DIR/glance/images, owned by the stack user.
"""
from __future__ import annotations

from minstack.apiservice import ApiService

# Directories under $DATA_DIR/glance the stack user writes: the image store, the
# reserved stores glance stages imports and tasks in (see glance-api.conf.j2), its locks.
STATE_DIRS = ("images", "os_glance_staging_store", "os_glance_tasks_store", "locks")


class Glance(ApiService):
    project = "glance"

    def before_config(self, ctx):
        s = ctx.settings
        data = s.data_dir / "glance"
        return [ctx.files_step("state dirs", f"{data}/{{{','.join(STATE_DIRS)}}} owned by {s.stack_user}", lambda: [
            ctx.directory(path, owner=s.stack_user, mode=0o750) for path in (data, *(data / n for n in STATE_DIRS))])]

    def configure(self, ctx):
        s = ctx.settings
        conf = self.conf(s)
        # The paste pipelines ship in the wheel; glance-api.conf points [paste_deploy] at this copy.
        paste = ctx.copy(self.shipped(s, "glance-api-paste.ini"), conf.parent / "glance-api-paste.ini",
                         **self.private(s), restarts=("glance-api",))
        return [ctx.directory(self.etc, owner="root", group=s.stack_user, mode=0o750), paste,
                ctx.template("glance/glance-api.conf.j2", conf, **self.private(s), restarts=("glance-api",),
                             conf_dir=conf.parent, lock_path=s.data_dir / "glance" / "locks")]

    def db_steps(self, ctx):
        return [self.sync(ctx, "db sync", "db_sync", describe="glance-manage db_sync")]

    def clean(self, ctx):
        super().clean(ctx)
        ctx.remove_trees(ctx.settings.data_dir / "glance")


# After accounts: the service project exists, so parallel phases never race to create it.
PHASE = Glance(name="glance", requires=("mysql", "memcached", "venv", "accounts"))
