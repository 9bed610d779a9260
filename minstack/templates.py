"""Config files come from jinja2 templates under files/templates/.

Every template gets the same small vocabulary (``s`` = the settings, plus the
URL helpers below); a template documents any extra variable it takes in its
header comment.
"""
from __future__ import annotations

import urllib.parse
from functools import lru_cache

import jinja2

from minstack import catalogue
from minstack.paths import TEMPLATES

# Every fixed port of minstack's own services, by name (API daemons by their daemon name), from the
# catalogue; templates get catalogue.ports(), which adds the enabled plugins' ports.
PORTS = catalogue.ports()


def ini_escape(value: object) -> str:
    """A value oslo.config reads back exactly as given.

    oslo.config interpolates ``$name`` (a literal ``$`` is written ``$$``), strips
    surrounding white space and one pair of matching outer quotes: wrapping the
    value in double quotes keeps a password like ``'pw '`` intact.
    """
    return '"' + str(value).replace("$", "$$") + '"'



def urlquote(value: object) -> str:
    return urllib.parse.quote(str(value), safe="")


_PLUGIN_PATHS: list[str] = []   # enabled minstack plugins' templates/ (minstack/plugins.py)


def set_plugin_paths(paths) -> None:
    """Templates are looked up in minstack's files/templates first, then in these."""
    _PLUGIN_PATHS[:] = [str(path) for path in paths]
    environment.cache_clear()


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(TEMPLATES), *_PLUGIN_PATHS]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["ini"] = ini_escape
    env.filters["urlquote"] = urlquote
    return env


def common_context(s) -> dict:
    from minstack.derived_secrets import database_password
    from minstack.mysql import account_for
    base = s.base_services_host  # MariaDB, RabbitMQ, memcached
    ports = catalogue.ports()

    def db_url(name: str) -> str:
        """Database name's URL, as the account that owns it (nova_cell1: nova), never as root."""
        account = account_for(name)
        password = urlquote(database_password(s, account))
        return f"mysql+pymysql://{account}:{password}@{base}/{name}?charset=utf8"

    def service_url(daemon: str) -> str:
        return catalogue.url(s, daemon)

    def log_file(name: str) -> str:
        return str(s.logdir / f"{name}.log")

    return {
        "s": s,
        "db_url": db_url,
        "transport_url": f"rabbit://stackrabbit:{urlquote(s.rabbit_password)}@{base}:{ports['rabbit']}/",
        "memcache_servers": f"{base}:{ports['memcached']}",
        "keystone_url": catalogue.keystone_url(s),
        "service_url": service_url,
        "ports": ports,
        "log_file": log_file,
    }


def render(template: str, settings, **extra) -> str:
    context = common_context(settings)
    context.update(extra)
    return environment().get_template(template).render(**context)
