"""Horizon: local settings, static files compressed ahead of time, served by uWSGI at http://$SERVICE_HOST/dashboard.

Horizon 27 comes from the release's ``horizon`` package in the services' venv,
which is root-owned and read-only to minstack's phases.  So nothing is written
into it:

- ``openstack_dashboard.settings`` ends its defaults with
  ``from local.local_settings import *``; uWSGI (and the manage commands) put
  /etc/openstack-dashboard first on the Python path, so ``local`` is
  /etc/openstack-dashboard/local/, rendered from
  files/templates/horizon/local_settings.py.j2.  (``openstack_dashboard.wsgi``
  forces DJANGO_SETTINGS_MODULE, so a settings module of our own would be
  ignored under uWSGI; and settings.py derives LOGIN_URL, STATIC_URL, ... from
  what local_settings says, which a wrapper module could not change after the fact.)
- STATIC_ROOT is $DATA_DIR/horizon/static, filled by ``collectstatic`` and
  ``compress`` (COMPRESS_OFFLINE) as the stack user, again only when the Horizon
  version or the settings changed: $DATA_DIR/horizon/assets.key records for which
  (a probe rather than a once_key, so assets removed by hand are rebuilt).
- SECRET_KEY is generated once into /etc/openstack-dashboard/.secret_key_store
  (stack, 0600; Horizon refuses any other mode), never into a log or the settings file.

uWSGI binds port 80 as root, then drops to the stack user before loading any
Horizon code; it serves the static files itself (files/templates/horizon/horizon-uwsgi.ini.j2).
"""
from __future__ import annotations

import hashlib
import secrets
import socket
import string
from pathlib import Path

from minstack import templates
from minstack.phase import Phase, Step
from minstack.probes import http_status
from minstack.supervisor import Daemon
from minstack.catalogue import ports
from minstack.versions import installed_version

ETC = Path("/etc/openstack-dashboard")
LOCAL = ETC / "local"                      # imported as the package `local`
LOCAL_SETTINGS = LOCAL / "local_settings.py"
ROOT_REDIRECT = ETC / "root_redirect.py"   # answers / (redirect) and other paths outside WEBROOT
SECRET_KEY_FILE = ETC / ".secret_key_store"
UWSGI_INI = ETC / "horizon-uwsgi.ini"
DAEMON = "horizon"
WEBROOT = "/dashboard/"


def horizon_url(settings) -> str:
    port = ports()["horizon"]
    return f"http://{settings.service_host}{'' if port == 80 else f':{port}'}{WEBROOT.rstrip('/')}"


def data_dir(settings) -> Path:
    return settings.data_dir / "horizon"


def static_root(settings) -> Path:
    return data_dir(settings) / "static"


def allowed_hosts(settings) -> list[str]:
    """The names a browser may use in the Host header: the service address, localhost
    (a Vagrant port forward) and this host's name."""
    names = [settings.service_host, settings.host_ip, "localhost", socket.gethostname()]
    return list(dict.fromkeys(names))


def local_settings_vars(settings) -> dict:
    """The extra variables of horizon/local_settings.py.j2."""
    return {"secret_key_file": SECRET_KEY_FILE, "static_root": static_root(settings),
            "allowed_hosts": allowed_hosts(settings)}


def local_settings(settings) -> str:
    """The rendered local_settings.py (its hash keys the static files)."""
    return templates.render("horizon/local_settings.py.j2", settings, **local_settings_vars(settings))


def assets_key_file(settings) -> Path:
    return data_dir(settings) / "assets.key"


# Dashboard plugins from the venv (heat-dashboard for Heat): enabled when their service is, by copying
# their "enabled" files, settings snippet and policy files into Horizon's tree, as DevStack does.
DASHBOARD_PLUGINS = {"h-api": "heat_dashboard"}


def site_packages(settings) -> Path:
    return next((settings.venv / "lib").glob("python3*/site-packages"), settings.venv / "lib" / "site-packages")


def dashboard_plugin_files(settings) -> list[tuple[Path, Path]]:
    """(source, target) of every file the enabled dashboard plugins put into openstack_dashboard."""
    site = site_packages(settings)
    dashboard = site / "openstack_dashboard"
    found = []
    for service, package in DASHBOARD_PLUGINS.items():
        if not settings.is_enabled(service) or not (site / package).is_dir():
            continue
        root = site / package
        found += [(path, dashboard / "local" / "enabled" / path.name)
                  for path in sorted((root / "enabled").glob("_[0-9]*.py"))]
        found += [(path, dashboard / "local" / "local_settings.d" / path.name)
                  for path in sorted((root / "local_settings.d").glob("_[0-9]*.py"))]
        found += [(path, dashboard / "conf" / path.relative_to(root / "conf"))
                  for path in sorted((root / "conf").rglob("*.yaml"))]
    return found


def manage_env(settings) -> dict[str, str]:
    """What `python -m django` needs to load Horizon's settings with ours (Horizon ships no manage.py)."""
    return {"PYTHONPATH": str(ETC), "DJANGO_SETTINGS_MODULE": "openstack_dashboard.settings"}


class Horizon(Phase):
    def daemons(self, ctx):
        s = ctx.settings
        login = horizon_url(s) + "/auth/login/"
        # Started as root only to bind port 80: uWSGI drops to the stack user itself (uid/gid).
        return [Daemon(DAEMON, [str(s.venv / "bin" / "uwsgi"), "--ini", str(UWSGI_INI)], user="root",
                       service="horizon", ready=lambda: http_status(login) == 200,
                       ready_timeout=s.service_timeout)]

    def steps(self, ctx):
        s = ctx.settings
        [daemon] = self.daemons(ctx)
        data, static = data_dir(s), static_root(s)
        manage = [str(s.venv / "bin" / "python"), "-m", "django"]
        # collectstatic + compress again whenever Horizon or what the settings say changes
        plugins = sorted(target.name for _, target in dashboard_plugin_files(s))
        assets_key = (f"horizon {installed_version(s.venv, 'horizon')}, settings "
                      f"{hashlib.sha256(local_settings(s).encode()).hexdigest()[:16]}"
                      + (f", plugins {hashlib.sha256(' '.join(plugins).encode()).hexdigest()[:16]}" if plugins else "")
                      + "\n")
        key_file = assets_key_file(s)

        def assets_current() -> bool:
            return ((static / "dashboard" / "manifest.json").exists() and key_file.exists()
                    and key_file.read_text() == assets_key)

        def dirs():
            return [ctx.directory(ETC, owner="root", group=s.stack_user, mode=0o750),
                    ctx.directory(LOCAL, owner="root", group=s.stack_user, mode=0o750),
                    ctx.directory(data, owner=s.stack_user, mode=0o755),
                    ctx.directory(static, owner=s.stack_user, mode=0o755)]

        def secret_key():
            alphabet = string.ascii_letters + string.digits
            key = "".join(secrets.choice(alphabet) for _ in range(64))
            ctx.write_file(SECRET_KEY_FILE, key, owner=s.stack_user, mode=0o600)

        def config():
            private = dict(owner="root", group=s.stack_user, mode=0o640)
            return [
                ctx.copy_of(LOCAL / "__init__.py",
                            "# Written by minstack: makes local_settings.py importable as local.local_settings.\n",
                            **private),
                ctx.template("horizon/local_settings.py.j2", LOCAL_SETTINGS, **private, restarts=(DAEMON,),
                             **local_settings_vars(s)),
                ctx.template("horizon/root_redirect.py.j2", ROOT_REDIRECT, **private, restarts=(DAEMON,),
                             webroot=WEBROOT),
                *(ctx.copy(source, target, restarts=(DAEMON,)) for source, target in dashboard_plugin_files(s))]

        def assets():
            env = manage_env(s)
            ctx.sh.run(manage + ["collectstatic", "--noinput", "--clear"], env=env, user=s.stack_user)
            ctx.sh.run(manage + ["compress", "--force"], env=env, user=s.stack_user)
            ctx.write_file(key_file, assets_key, owner=s.stack_user, mode=0o644)
            ctx.restart.add(DAEMON)  # a running Horizon keeps the old compress manifest

        def uwsgi_config():
            return [ctx.template("horizon/horizon-uwsgi.ini.j2", UWSGI_INI, owner="root", group=s.stack_user,
                                 mode=0o640, restarts=(DAEMON,), bind=f"{s.service_host}:{ports()['horizon']}",
                                 conf_dir=ETC, data_dir=data, static_root=static, processes=s.api_workers,
                                 threads=4)]

        return [
            ctx.files_step("dirs", f"{ETC}, {LOCAL} (root:{s.stack_user}); {static} ({s.stack_user})", dirs),
            Step("secret key", secret_key, f"{SECRET_KEY_FILE}: 64 random characters, {s.stack_user} 0600",
                 check=SECRET_KEY_FILE.exists),
            ctx.files_step("config", f"{LOCAL_SETTINGS} from horizon/local_settings.py.j2; {ROOT_REDIRECT}",
                           config),
            Step("static files", assets, f"collectstatic and compress into {static} ({assets_key.strip()})",
                 check=assets_current),
            ctx.files_step("uwsgi config", f"{UWSGI_INI}: openstack_dashboard.wsgi at {WEBROOT}", uwsgi_config),
            ctx.start_step(daemon, f"uWSGI serving Horizon at {horizon_url(s)}", name="start"),
        ]

    def summary(self, settings):
        return [("Horizon", horizon_url(settings))]

    def clean(self, ctx):
        for path in (ETC, data_dir(ctx.settings)):
            if path.exists():
                ctx.sh.run(["rm", "-rf", "--one-file-system", str(path)])


# Needs Keystone to log in and memcached for its sessions; no database, no service account.
PHASE = Horizon(name="horizon", requires=("memcached", "venv", "keystone"))
