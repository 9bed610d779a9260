"""The shape every OpenStack API service follows, declared once.

config -> database -> db sync -> uWSGI config -> Keystone account, service
and endpoints -> start, plus whatever a service adds before, between and
after.  A phase for a new API service subclasses :class:`ApiService`, names
its catalogue project, and says only what is its own:

- ``configure(ctx)``: the files it writes (a list of :class:`~minstack.context.Wanted`,
  usually one template per ``*_CONF`` key),
- ``db_steps(ctx)``: its database migrations (``self.sync(ctx, ...)``),
- optionally ``before_config``, ``after_config``, ``after_sync``, ``extra_daemons``
  and ``after_start`` for what does not fit the shape.

Everything else -- the config file paths (the user's ``*_CONF``), the
databases, the uWSGI servers, the catalog entry, ports and URLs -- comes
from the project's entry in minstack/catalogue.py.
"""
from __future__ import annotations

from pathlib import Path

from minstack import catalogue, identity, mysql
from minstack.context import Wanted
from minstack.phase import Phase, Step
from minstack.probes import http_ok
from minstack.supervisor import Daemon
from minstack.versions import code_key, shipped_files


class ApiService(Phase):
    project: str = ""        # its name in the catalogue

    # ---- what the catalogue says --------------------------------------------------------------------
    @property
    def entry(self) -> catalogue.Project:
        return catalogue.project(self.project)

    @property
    def etc(self) -> Path:
        """Where its uWSGI, paste and rootwrap files go: /etc/<project>."""
        return Path("/etc") / self.project

    def conf(self, settings, key: str | None = None) -> Path:
        """One of its config files, where the user's *_CONF says (default: its first).  A plugin's
        project has no *_CONF setting: its files are where its catalogue entry says."""
        key = key or next(iter(self.entry.config_files))
        return Path(settings.config_files.get(key, self.entry.config_files[key]))

    def apis(self, settings) -> list[catalogue.Api]:
        return [api for api in self.entry.apis if settings.is_enabled(api.service)]

    def uwsgi_ini(self, api: catalogue.Api) -> Path:
        return self.etc / f"{api.daemon}-uwsgi.ini"

    def shipped(self, settings, name: str) -> Path:
        """A file the project ships into <venv>/etc/<project> (its paste file), or, from a
        checkout, where its tree keeps it."""
        found = shipped_files(settings.venv, self.entry.distribution, f"etc/{self.project}")
        return found.get(name, settings.venv / "etc" / self.project / name)

    def private(self, settings) -> dict:
        """Mode and owners of a file with passwords in it: root:<stack user> 0640."""
        return dict(owner="root", group=settings.stack_user, mode=0o640)

    # ---- what a service says itself -------------------------------------------------------------------
    def configure(self, ctx) -> list[Wanted]:
        return []

    def db_steps(self, ctx) -> list[Step]:
        return []

    def before_config(self, ctx) -> list[Step]:
        return []

    def after_config(self, ctx) -> list[Step]:
        return []

    def after_sync(self, ctx) -> list[Step]:
        return []

    def extra_daemons(self, ctx) -> list[Daemon]:
        return []

    def after_start(self, ctx) -> list[Step]:
        return []

    def config_files_env(self, settings, api: catalogue.Api) -> dict[str, str]:
        """How the WSGI module finds its config: the directory, and the files where it can be told."""
        if not api.config_env:  # it reads /etc/<project>/<project>.conf, oslo.config's default
            return {}
        files = [self.conf(settings, key) for key in api_config_keys(self.entry, api)]
        env = {api.config_env: str(files[0].parent)}
        if api.files_env:
            env[api.files_env] = ";".join(str(path) for path in files)
        return env

    # ---- the shape ------------------------------------------------------------------------------------
    def daemons(self, ctx):
        s = ctx.settings
        return [uwsgi_daemon(s, api, self.uwsgi_ini(api)) for api in self.apis(s) if api.uwsgi] \
            + self.extra_daemons(ctx)

    def steps(self, ctx):
        s = ctx.settings
        conf = self.conf(s)
        steps = list(self.before_config(ctx))
        steps.append(ctx.files_step("config", f"{conf} and the rest of {self.project}'s configuration "
                                              "(+ local.conf post-config)", lambda: self.configure(ctx)))
        steps += self.after_config(ctx)
        databases = self.entry.databases
        if databases and self.needs_database(s):
            steps.append(Step("database", lambda: [mysql.create_database(name) for name in databases],
                              f"create database{'s' if len(databases) > 1 else ''} {', '.join(databases)}",
                              check=lambda: all(mysql.database_exists(name) for name in databases)))
            steps += self.db_steps(ctx)
        steps += self.after_sync(ctx)
        apis = self.apis(s)
        steps += [ctx.files_step(f"uwsgi config {api.daemon}", f"{self.uwsgi_ini(api)}: {api.module}",
                                 lambda api=api: [self.uwsgi_config(ctx, api)]) for api in apis if api.uwsgi]
        steps += self.account_steps(ctx)  # before start: once the API answers, it can check tokens too
        steps += [ctx.start_step(daemon) for daemon in self.daemons(ctx)]
        steps += self.after_start(ctx)
        return steps

    def needs_database(self, settings) -> bool:
        """Whether this host runs a part of the service that uses the database (an API does)."""
        return bool(self.apis(settings))

    def sync(self, ctx, name: str, *args: str, describe: str = "") -> Step:
        """A database migration: <project>-manage ARGS as the stack user, again when the code changes
        (a release's version; a checkout's migration files)."""
        s = ctx.settings
        manage = [str(s.venv / "bin" / f"{self.project}-manage"), "--config-file", str(self.conf(s)), *args]
        return Step(name, lambda: ctx.sh.run(manage, user=s.stack_user),
                    describe or f"{self.project}-manage {' '.join(args)}",
                    once_key=code_key(s.venv, self.entry.distribution))

    def uwsgi_config(self, ctx, api: catalogue.Api) -> Wanted:
        s = ctx.settings
        return ctx.template("uwsgi.ini.j2", self.uwsgi_ini(api), **self.private(s), restarts=(api.daemon,),
                            name=api.daemon, module=api.module, bind=f"{s.service_host}:{api.port}", venv=s.venv,
                            processes=s.api_workers, threads=api.threads,
                            chunked_input_limit=api.chunked_input_limit, env=self.config_files_env(s, api),
                            pyargv=self.uwsgi_pyargv(s, api))

    def uwsgi_pyargv(self, settings, api: catalogue.Api) -> str:
        """The argv uWSGI hands the WSGI module (cinder.wsgi.api parses --config-file from it)."""
        return ""

    # ---- the Keystone account ---------------------------------------------------------------------
    def account_steps(self, ctx) -> list[Step]:
        """The service's user, catalog entry and endpoints, where this host serves the API they name."""
        s = ctx.settings
        catalog = self.entry.catalog
        if not catalog or catalog.api not in {api.daemon for api in self.apis(s)}:
            return []
        url = catalogue.url(s, catalog.api)
        return [Step("keystone account", lambda differs: self.ensure_account(s),
                     f"user {catalog.user or catalog.name}, service {catalog.name} ({catalog.type}), endpoints {url}",
                     observe=lambda: self.account_differs(s))]

    def account_differs(self, settings) -> list[str]:
        catalog = self.entry.catalog
        return identity.service_account_differs(settings, identity.admin_connection(settings),
                                                catalog.user or catalog.name, catalog.name, catalog.type,
                                                catalogue.url(settings, catalog.api))

    def ensure_account(self, settings) -> None:
        catalog = self.entry.catalog
        identity.ensure_service_account(settings, identity.admin_connection(settings),
                                        catalog.user or catalog.name, catalog.name, catalog.type,
                                        catalog.description, catalogue.url(settings, catalog.api))

    # ---- the closing summary and --clean ---------------------------------------------------------------
    def summary(self, settings):
        catalog = self.entry.catalog
        if catalog and any(api.daemon == catalog.api for api in self.apis(settings)):
            return [(self.project.capitalize(), catalogue.url(settings, catalog.api))]
        return []

    def clean(self, ctx):
        ctx.drop_databases(*self.entry.databases)
        ctx.remove_trees(self.etc)
        for key in self.entry.config_files:  # a *_CONF the user put elsewhere: that file only
            path = self.conf(ctx.settings, key)
            if path.exists() and self.etc not in path.parents:
                path.unlink()
                ctx.log.info("removed %s", path)


def api_config_keys(project: catalogue.Project, api: catalogue.Api) -> tuple[str, ...]:
    """The *_CONF keys an API's WSGI module reads: the project's, but nova-compute's own."""
    return tuple(key for key in project.config_files if key != "NOVA_CPU_CONF")


def uwsgi_daemon(settings, api: catalogue.Api, ini: Path) -> Daemon:
    ready = catalogue.base_url(settings, api.daemon) + api.ready_path
    return Daemon(api.daemon, [str(settings.venv / "bin" / "uwsgi"), "--ini", str(ini)], user=settings.stack_user,
                  service=api.service, ready=lambda: http_ok(ready), ready_timeout=settings.service_timeout)
