"""What is installed in the services' venv."""
from __future__ import annotations

import re
from importlib.metadata import PathDistribution
from pathlib import Path


def canonical(distribution: str) -> str:
    """A distribution's canonical name (PEP 503): oslo.log, oslo_log and Oslo-Log are one."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def dist_infos(venv: Path) -> dict[str, Path]:
    """Every distribution in the venv (canonical name) -> its .dist-info directory."""
    return {canonical(found.name[:-len(".dist-info")].rsplit("-", 1)[0]): found
            for found in (venv / "lib").glob("python3*/site-packages/*.dist-info")}


def dist_info(venv: Path, distribution: str) -> Path | None:
    """The .dist-info directory of a distribution in the venv, whatever spelling either uses."""
    return dist_infos(venv).get(canonical(distribution))


def installed_version(venv: Path, distribution: str) -> str:
    """The version of a distribution in the services' venv ("unknown" before it is installed)."""
    found = dist_info(venv, distribution)
    return PathDistribution(found).version if found else "unknown"


def code_key(venv: Path, distribution: str) -> str:
    """What a database migration keys on: a release's version, or for a checkout (an editable
    install) a fingerprint of its migration files -- its pbr version moves with every commit,
    while the schema changes only when a migration does."""
    from minstack.checkouts import editable_location, migrations_key
    tree = editable_location(venv, distribution)
    return f"checkout, migrations {migrations_key(tree)}" if tree else installed_version(venv, distribution)


def data_files(tree: Path) -> dict[str, list[str]]:
    """A source tree's data files, as its packaging declares them: target dir -> source globs
    (pyproject.toml [tool.setuptools.data-files], or pbr's setup.cfg [files] data_files)."""
    import configparser
    import tomllib
    pyproject = tree / "pyproject.toml"
    if pyproject.is_file():
        declared = tomllib.loads(pyproject.read_text()).get("tool", {}).get("setuptools", {}).get("data-files")
        if declared:
            return {target: list(sources) for target, sources in declared.items()}
    parser = configparser.ConfigParser(interpolation=None)
    if (tree / "setup.cfg").is_file():
        parser.read(tree / "setup.cfg")
    found: dict[str, list[str]] = {}
    target = None
    for line in parser.get("files", "data_files", fallback="").splitlines():
        if "=" in line:
            target, _, rest = (part.strip() for part in line.partition("="))
            found[target] = [rest] if rest else []
        elif line.strip() and target:
            found[target].append(line.strip())
    return found


def shipped_files(venv: Path, distribution: str, target: str) -> dict[str, Path]:
    """The files a project ships into <venv>/<target> (etc/nova: api-paste.ini, rootwrap.conf),
    by name.  An editable install (a checkout) leaves them in its tree, where its
    packaging says they come from."""
    from minstack.checkouts import editable_location
    tree = editable_location(venv, distribution)
    if tree is None:
        where = venv / target
        return {path.name: path for path in sorted(where.iterdir()) if path.is_file()} if where.is_dir() else {}
    return {path.name: path for pattern in data_files(tree).get(target, [])
            for path in sorted(tree.glob(pattern)) if path.is_file()}
