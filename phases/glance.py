"""Glance: config, database, image store, keystone account, served by uWSGI (catalogue: port 9292).

glance 33's ``glance-api`` console script only says "Standalone glance-api is
no longer supported": the API runs under uWSGI (module glance.wsgi.api, which
reads glance-api.conf in OS_GLANCE_CONFIG_DIR).  Images live in a file store
("local") under $DATA_DIR/glance/images, owned by the stack user.

With GLANCE_USE_SWIFT, a second store ("swift") is the default: new images go to
the container "glance" of the service project's Swift account, as the glance
service user (credentials in glance-swift-store.conf beside glance-api.conf, so
that image locations in the database say swift+config://ref1/..., never a
password).  The file store stays: images already there stay readable, and an
upload may ask for it (X-Image-Meta-Store: local, or an import's stores).  Glance
then also requires the swift phase, so that nothing uploads an image before the
object store answers.
"""
from __future__ import annotations

from pathlib import Path

from minstack.apiservice import ApiService
from minstack.phase import Step

# Directories under $DATA_DIR/glance the stack user writes: the image store, the
# reserved stores glance stages imports and tasks in (see glance-api.conf.j2), its locks.
STATE_DIRS = ("images", "os_glance_staging_store", "os_glance_tasks_store", "locks")
# The swift store's account references (GLANCE_USE_SWIFT), beside glance-api.conf (DevStack's name).
SWIFT_STORE_FILE = "glance-swift-store.conf"


class Glance(ApiService):
    project = "glance"

    def requirements(self, settings):
        """With GLANCE_USE_SWIFT, Swift finishes first: whatever uploads once Glance is up (the image
        phase, Nova's snapshots, Tempest) finds the object store answering."""
        uses_swift = settings is not None and settings.glance_use_swift
        return self.requires + (("swift",) if uses_swift else ())

    def swift_store_file(self, settings) -> Path:
        return self.conf(settings).parent / SWIFT_STORE_FILE

    def before_config(self, ctx):
        s = ctx.settings
        data = s.data_dir / "glance"
        return [ctx.files_step("state dirs", f"{data}/{{{','.join(STATE_DIRS)}}} owned by {s.stack_user}", lambda: [
            ctx.directory(path, owner=s.stack_user, mode=0o750) for path in (data, *(data / n for n in STATE_DIRS))])]

    def configure(self, ctx):
        s = ctx.settings
        conf = self.conf(s)
        swift_store = self.swift_store_file(s) if s.glance_use_swift else None
        # The paste pipelines ship in the wheel; glance-api.conf points [paste_deploy] at this copy.
        paste = ctx.copy(self.shipped(s, "glance-api-paste.ini"), conf.parent / "glance-api-paste.ini",
                         **self.private(s), restarts=("glance-api",))
        files = [ctx.directory(self.etc, owner="root", group=s.stack_user, mode=0o750), paste]
        if swift_store:
            catalog = self.entry.catalog
            files.append(ctx.template("glance/glance-swift-store.conf.j2", swift_store, **self.private(s),
                                      restarts=("glance-api",), user=catalog.user or catalog.name))
        files.append(ctx.template("glance/glance-api.conf.j2", conf, **self.private(s), restarts=("glance-api",),
                                  conf_dir=conf.parent, lock_path=s.data_dir / "glance" / "locks",
                                  swift_store_file=swift_store))
        return files

    def after_config(self, ctx):
        s = ctx.settings
        stale = self.swift_store_file(s)
        if s.glance_use_swift:
            return []
        # GLANCE_USE_SWIFT was on and is off now: glance-api.conf no longer names the file; its
        # password should not stay behind
        return [Step("swift store file", lambda: ctx.remove_files(stale), f"remove {stale} (GLANCE_USE_SWIFT is off)",
                     check=lambda: not stale.exists())]

    def db_steps(self, ctx):
        return [self.sync(ctx, "db sync", "db_sync", describe="glance-manage db_sync")]

    def clean(self, ctx):
        super().clean(ctx)
        ctx.remove_files(self.swift_store_file(ctx.settings))  # beside a GLANCE_API_CONF outside /etc/glance
        ctx.remove_trees(ctx.settings.data_dir / "glance")


# After accounts: the service project exists, so parallel phases never race to create it.
# With GLANCE_USE_SWIFT also after swift (Glance.requirements).
PHASE = Glance(name="glance", requires=("mysql", "memcached", "venv", "accounts"))
