"""Serving an OpenStack API module with uWSGI (there are no *-wsgi scripts any more)."""
from __future__ import annotations

from pathlib import Path

from minstack.probes import http_ok
from minstack.supervisor import Daemon


def write_config(ctx, name: str, module: str, port: int, path: str | Path, *,
                 env: dict[str, str] | None = None, pyargv: str = "", threads: int = 1) -> bool:
    s = ctx.settings
    return ctx.render("uwsgi.ini.j2", path, owner="root", group=s.stack_user, mode=0o640, restarts=(name,),
                      name=name, module=module, bind=f"{s.service_host}:{port}", venv=s.venv,
                      processes=s.api_workers, threads=threads, env=env or {}, pyargv=pyargv)


def daemon(ctx, name: str, service: str, path: str | Path, ready_url: str) -> Daemon:
    s = ctx.settings
    return Daemon(name, [str(s.venv / "bin" / "uwsgi"), "--ini", str(path)], user=s.stack_user,
                  service=service, ready=lambda: http_ok(ready_url), ready_timeout=s.service_timeout)
