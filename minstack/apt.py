"""Distro packages: the lists under files/debs/, installed in one apt-get run."""
from __future__ import annotations

import time
from pathlib import Path

from minstack.paths import DEBS
from minstack.shell import CommandFailed, Shell

APT = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "-o", "Acquire::Retries=3"]
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "NEEDRESTART_MODE": "a"}


def read_list(name: str, directory: Path | None = None) -> list[str]:
    """One package per line; '#' starts a comment.  Looked up in files/debs, then in the enabled
    minstack plugins' debs/ directories."""
    if directory is None:
        from minstack import plugins
        directory = next((d for d in (DEBS, *plugins.debs_directories()) if (d / name).exists()), DEBS)
    packages = []
    for line in (directory / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            packages.extend(line.split())
    return packages


def missing(sh: Shell, packages: list[str]) -> list[str]:
    """The packages dpkg does not have installed (one dpkg-query call for all)."""
    if not packages:
        return []
    result = sh.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\n", *packages],
                    check=False, quiet=True)
    installed = {line.split()[0] for line in result.stdout.splitlines()
                 if len(line.split()) > 1 and line.split()[1].startswith("ii")}
    return [p for p in packages if p not in installed]


def install(sh: Shell, packages: list[str], attempts: int = 3) -> None:
    """apt-get install with retries (mirrors hiccup); runs apt-get update first when lists are stale."""
    lists = Path("/var/lib/apt/lists")
    if not any(lists.glob("*Packages*")) or time.time() - lists.stat().st_mtime > 6 * 3600:
        sh.run(APT + ["update", "-q"], env=APT_ENV)
    for attempt in range(1, attempts + 1):
        try:
            sh.run(APT + ["install", "-y", "-q", "--no-install-recommends", *packages], env=APT_ENV)
            return
        except CommandFailed:
            if attempt == attempts:
                raise
            sh.log.warning("apt-get install failed (attempt %d of %d); updating lists and retrying",
                           attempt, attempts)
            sh.run(APT + ["update", "-q"], env=APT_ENV, check=False)
            time.sleep(5 * attempt)
