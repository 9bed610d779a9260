"""A project's rootwrap, installed the upstream way (DevStack's configure_rootwrap).

Services that need root (nova-compute, neutron-ovn-agent, cinder-volume) run
``sudo <project>-rootwrap /etc/<project>/rootwrap.conf <command>``; oslo.privsep
starts its helper the same way.  The filters and rootwrap.conf are copied out
of the venv (or a checkout's tree) to /etc/<project>/, root-owned: whoever could edit them would be root.
"""
from __future__ import annotations

import re
from pathlib import Path

from minstack import catalogue
from minstack.context import Wanted
from minstack.versions import shipped_files


def conf_path(project: str) -> Path:
    return Path("/etc") / project / "rootwrap.conf"


def rewrite_conf(text: str, project: str, venv: Path) -> str:
    """Point filters_path at /etc/<project>/rootwrap.d and let exec_dirs find the venv's
    privsep-helper (appended last, so system binaries such as ip and haproxy win)."""
    text = re.sub(r"(?m)^filters_path\s*=.*$", f"filters_path=/etc/{project}/rootwrap.d", text)

    def add_venv(match: re.Match) -> str:
        dirs = [d.strip() for d in match.group(1).split(",") if d.strip()]
        if str(venv / "bin") not in dirs:
            dirs.append(str(venv / "bin"))
        return "exec_dirs=" + ",".join(dirs)

    return re.sub(r"(?m)^exec_dirs\s*=(.*)$", add_venv, text)


def wanted(ctx, project: str, restarts: tuple[str, ...] = ()) -> list:
    """rootwrap.conf and rootwrap.d/*.filters for project, root-owned, as files a step keeps."""
    venv = ctx.settings.venv
    distribution = catalogue.project(project).distribution
    etc = Path("/etc") / project
    shipped = shipped_files(venv, distribution, f"etc/{project}")
    filters = shipped_files(venv, distribution, f"etc/{project}/rootwrap.d")
    conf = rewrite_conf(shipped["rootwrap.conf"].read_text(), project, venv).encode()
    return [ctx.directory(etc / "rootwrap.d", owner="root", mode=0o755),
            Wanted(conf_path(project), conf, 0o644, "root", None, restarts),
            *(ctx.copy(filters, etc / "rootwrap.d" / filters.name, restarts=restarts)
              for name, filters in sorted(filters.items()) if name.endswith(".filters"))]


def step(ctx, project: str, restarts: tuple[str, ...], describe: str):
    return ctx.files_step("rootwrap", f"{conf_path(project)} and rootwrap.d from the wheel: {describe}",
                          lambda: wanted(ctx, project, restarts))
