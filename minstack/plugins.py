"""minstack plugins: services minstack does not stack itself, in a tree of their own.

In localrc / local.conf, with DevStack's syntax::

    enable_plugin NAME URL|PATH [REF]

A **minstack plugin** is a directory (or git repository) with a ``minstack-plugin/``
directory, the same contract as minstack's own services::

    minstack-plugin/
      plugin.py          PROJECTS: its catalogue entries, built with minstack.catalogue.declare(...)
                         (DevStack service names, databases, Keystone entry, APIs, ports)
      phases/<name>.py   one module per phase, each defining PHASE (minstack/phase.py; an API
                         service subclasses minstack.apiservice.ApiService)
      templates/         jinja2 templates, found after minstack's own (keep them under <project>/)
      debs/<list>        distro package lists its phases name in ``debs=(...)``
      requirements.txt   Python distributions for the services' venv (the release's lock is the
                         constraint: nothing minstack installed moves)

Enabling a plugin enables its projects' default services (``in_default``) at the
``enable_plugin`` line; ``disable_service`` after it turns them off.  Its phases then
take part in ordering, resume, plan, status, restart, logs, unstack and ``--clean``
like minstack's own.

Where it comes from:

- a **path** (absolute, ``~/...``, or relative to the localrc's directory): used in place,
  never copied or changed, like ``<PROJECT>_DIR``;
- a **URL** (``https://``, ``git://``, ``ssh``, ``file://``): cloned into ``$DEST/NAME`` at
  REF (default ``master``) by ``./stack.py``; an existing clone is used as it is, unless
  ``RECLONE=True`` (fetched and reset to REF again).  ``OFFLINE=True`` never fetches.

Refused, with the line, before anything changes: a DevStack plugin (``devstack/plugin.sh``:
shell code, which minstack never runs) and a tree without ``minstack-plugin/``.  A
well-known DevStack plugin for a project minstack installs itself (``enable_plugin heat
...``) is accepted: the line enables that project's services and the URL is not used.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from minstack import catalogue
from minstack.errors import MinstackError, Problem
from minstack.paths import REPO

PLUGIN_DIR = "minstack-plugin"
DEVSTACK_PLUGIN = Path("devstack") / "plugin.sh"
DEFAULT_REF = "master"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
SHIPPED = REPO / "plugins"      # the plugins that come with minstack (plugins/barbican)

log = logging.getLogger("minstack.plugins")


@dataclass(frozen=True)
class PluginLine:
    """One ``enable_plugin`` line, as written."""

    name: str
    source: str        # a URL or a path
    ref: str           # "" when not given
    file: str
    line: int


@dataclass(frozen=True)
class Plugin:
    """A loaded minstack plugin."""

    name: str
    root: Path                                    # the tree (its minstack-plugin/ is the contract)
    source: str                                   # as written in localrc
    ref: str = ""
    projects: tuple[catalogue.Project, ...] = ()
    phases: tuple = ()                            # its Phase objects
    requirements: tuple[str, ...] = ()            # requirements.txt lines
    file: str = ""
    line: int = 0
    commit: str = ""                              # a git tree's HEAD (./stack.py status shows it)

    @property
    def directory(self) -> Path:
        return self.root / PLUGIN_DIR

    @property
    def templates(self) -> Path:
        return self.directory / "templates"

    @property
    def debs(self) -> Path:
        return self.directory / "debs"

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(name for p in self.projects for name in p.in_default)

    def requirements_key(self) -> str:
        return hashlib.sha256("\n".join(self.requirements).encode()).hexdigest()[:16]


class PluginError(MinstackError):
    pass


# ---- the enabled plugins, for the lookups that need them (catalogue, templates, apt, phases) --------
_ACTIVE: dict[str, Plugin] = {}


def active() -> list[Plugin]:
    return list(_ACTIVE.values())


def activate(plugins: list[Plugin]) -> None:
    """Make these the enabled plugins: their projects join the catalogue, their templates,
    package lists and phases are found like minstack's own."""
    from minstack import templates
    _ACTIVE.clear()
    catalogue.forget_plugins()
    for plugin in plugins:
        _ACTIVE[plugin.name] = plugin
        catalogue.add_plugin_projects(plugin.name, plugin.projects)
    templates.set_plugin_paths([p.templates for p in plugins if p.templates.is_dir()])


def phases() -> list:
    return [phase for plugin in _ACTIVE.values() for phase in plugin.phases]


def debs_directories() -> list[Path]:
    return [plugin.debs for plugin in _ACTIVE.values() if plugin.debs.is_dir()]


# ---- from a localrc line to a loaded plugin ---------------------------------------------------------
@dataclass
class Resolved:
    plugins: list[Plugin] = field(default_factory=list)
    builtin: list[tuple[PluginLine, tuple[str, ...]]] = field(default_factory=list)  # line -> services it enables
    unfetched: list[PluginLine] = field(default_factory=list)   # URL plugins not cloned yet
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def resolve(lines: list[PluginLine], *, base: Path, dest: Path) -> Resolved:
    """Load every enable_plugin line (reading files only: URL plugins not cloned yet are left out
    with a warning; ./stack.py clones them with :func:`fetch` and loads the settings again)."""
    found = Resolved()
    seen: dict[str, PluginLine] = {}
    for line in lines:
        def problem(message: str, line=line) -> None:
            found.errors.append(Problem(line.file, line.line, f"enable_plugin {line.name}: {message}"))

        if line.name in seen:
            problem(f"already enabled at line {seen[line.name].line}")
            continue
        seen[line.name] = line
        builtin = next((p for p in catalogue.PROJECTS if p.devstack_plugin == line.name), None)
        if builtin is not None:
            if not builtin.supported:
                problem(f"{line.name} is DevStack's plugin for {builtin.name}, which minstack will install itself; "
                        "this minstack does not yet")
                continue
            found.builtin.append((line, tuple(builtin.services)))
            found.warnings.append(Problem(line.file, line.line, f"enable_plugin {line.name}: minstack installs "
                                          f"{builtin.name} itself; this line enables {', '.join(builtin.services)} "
                                          f"({line.source} is not used)"))
            continue
        try:
            root = locate(line, base=base, dest=dest)
            if root is None:
                found.unfetched.append(line)
                found.warnings.append(Problem(line.file, line.line, f"enable_plugin {line.name}: not cloned yet "
                                              f"({dest / line.name}); ./stack.py clones it. Left out for now"))
                continue
            found.plugins.append(load(line, root))
        except PluginError as error:
            problem(str(error))
    return found


def locate(line: PluginLine, *, base: Path, dest: Path) -> Path | None:
    """The plugin's tree: a path as it is; a URL's clone in $DEST/NAME (None: not cloned yet)."""
    if not is_url(line.source):
        root = (base / Path(line.source).expanduser()).resolve()
        if not root.is_dir():
            raise PluginError(f"{root} is not a directory" + shipped_hint(line.name))
        if line.ref:
            raise PluginError(f"a path is used as it is, so REF {line.ref} cannot be checked out; drop it, "
                              "or give a git URL (file://...)")
        check_tree(line.name, root)
        return root
    root = dest / line.name
    if not (root / ".git").exists():
        return None
    check_tree(line.name, root)
    return root


def fetch(settings) -> list[str]:
    """./stack.py, before the settings load again: clone the URL plugins not cloned yet, and with
    RECLONE=True fetch the others again.  Returns what it did, for the console."""
    done = []
    for line in settings.unfetched_plugins:
        with at(line):
            if settings.offline:
                raise PluginError(f"OFFLINE=True and {settings.dest / line.name} is not cloned yet; clone "
                                  f"{line.source} there once while online, or give a local path")
            clone(line, settings.dest / line.name, settings.git_depth)
        done.append(f"cloned plugin {line.name} from {line.source} into {settings.dest / line.name}")
    if settings.reclone and not settings.offline:
        for plugin in settings.plugins:
            if is_url(plugin.source):
                line = PluginLine(plugin.name, plugin.source, plugin.ref, plugin.file, plugin.line)
                with at(line):
                    fetch_ref(plugin.root, line)
                done.append(f"fetched plugin {plugin.name} again (RECLONE=True)")
    return done


@contextlib.contextmanager
def at(line: PluginLine):
    """Errors name the enable_plugin line they come from."""
    try:
        yield
    except PluginError as error:
        raise PluginError(f"{line.file}:{line.line}: enable_plugin {line.name}: {error}") from None


def is_url(source: str) -> bool:
    return "://" in source or re.match(r"^[\w.-]+@[\w.-]+:", source) is not None


def shipped_hint(name: str) -> str:
    shipped = SHIPPED / name
    return f"; minstack ships a {name} plugin: enable_plugin {name} {shipped}" if (shipped / PLUGIN_DIR).is_dir() else ""


def check_tree(name: str, root: Path) -> None:
    """A minstack plugin, or a clear refusal (a DevStack shell plugin, or neither)."""
    if (root / PLUGIN_DIR / "plugin.py").is_file():
        return
    if (root / DEVSTACK_PLUGIN).is_file():
        raise PluginError(f"{root} is a DevStack plugin ({DEVSTACK_PLUGIN}): shell code, which minstack never runs. "
                          f"minstack loads only minstack plugins ({PLUGIN_DIR}/plugin.py and phases; see README "
                          "\"Plugins\"); nothing was changed" + shipped_hint(name))
    raise PluginError(f"{root} has no {PLUGIN_DIR}/plugin.py: it is not a minstack plugin (see README \"Plugins\")"
                      + shipped_hint(name))


def _git(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """git, never prompting, trusting trees of other users (minstack.checkouts.GIT_ENV)."""
    from minstack.checkouts import GIT_ENV
    return subprocess.run(["git", *args], env={**os.environ, **GIT_ENV}, capture_output=True, text=True,
                          timeout=timeout, check=False)


def clone(line: PluginLine, root: Path, git_depth: int) -> None:
    """Clone a URL plugin into a scratch directory next to root, check it, then move it in place:
    a refused plugin leaves nothing behind."""
    from minstack.checkouts import reach
    from minstack.shell import Shell
    if not shutil.which("git"):
        raise PluginError(f"git is not installed, and {line.source} is a git URL; apt-get install git, or give a "
                          "local path")
    ref = line.ref or DEFAULT_REF
    try:  # the checkouts' own probe: git ls-remote, bounded in time, its error names the URL
        reach(Shell(log), line.source, ref)
    except MinstackError as error:
        raise PluginError(f"{error}. Give a local path (a clone of it) or set OFFLINE=True with the tree already "
                          "in place; nothing was changed" + shipped_hint(line.name)) from None
    scratch = root.with_name(f".{root.name}.fetching")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.parent.mkdir(parents=True, exist_ok=True)
    try:
        depth = ["--depth", str(git_depth)] if git_depth and not line.source.startswith("file://") else []
        for args in (["clone", "--no-checkout", *depth, line.source, str(scratch)],
                     ["-C", str(scratch), "fetch", *depth, "origin", ref],
                     ["-C", str(scratch), "checkout", "--detach", "FETCH_HEAD"]):
            done = _git(*args)
            if done.returncode != 0:
                raise PluginError(f"git {args[0] if args[0] != '-C' else args[2]} of {line.source} {ref} failed: "
                                  + (done.stderr.strip().splitlines() or ["no output"])[-1])
        check_tree(line.name, scratch)
        if root.exists():
            raise PluginError(f"{root} exists and is not a git clone; move it away")
        scratch.rename(root)
        log.info("cloned plugin %s from %s at %s into %s", line.name, line.source, ref, root)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def fetch_ref(root: Path, line: PluginLine) -> None:
    """RECLONE=True: fetch REF again and reset the clone to it."""
    ref = line.ref or DEFAULT_REF
    for args in (["-C", str(root), "fetch", "origin", ref], ["-C", str(root), "checkout", "--force", "--detach",
                                                              "FETCH_HEAD"]):
        done = _git(*args)
        if done.returncode != 0:
            raise PluginError(f"RECLONE=True: git {args[2]} of {line.source} {ref} in {root} failed: "
                              + (done.stderr.strip().splitlines() or ["no output"])[-1])


def load(line: PluginLine, root: Path) -> Plugin:
    """Import the plugin's plugin.py and phases (its projects are declared before its phases load)."""
    from minstack.phase import Phase
    directory = root / PLUGIN_DIR
    module = _import(line.name, "plugin", directory / "plugin.py")
    declared = getattr(module, "PROJECTS", None)
    if not isinstance(declared, (tuple, list)) or not all(isinstance(p, catalogue.Project) for p in declared):
        raise PluginError(f"{directory / 'plugin.py'}: PROJECTS must be a tuple of catalogue.declare(...) entries")
    projects = tuple(dataclasses.replace(p, plugin=line.name) for p in declared)
    clashes = [name for p in projects for name in p.services if name in catalogue.known_services()
               and catalogue.project_of_service(name).plugin != line.name]
    if clashes:
        raise PluginError(f"{directory / 'plugin.py'}: service names already taken: {', '.join(clashes)}")
    catalogue.add_plugin_projects(line.name, projects)  # Phase() looks its services up in the catalogue
    loaded = []
    for path in sorted((directory / "phases").glob("*.py")):
        if path.name.startswith("_"):
            continue
        phase = getattr(_import(line.name, f"phases_{path.stem}", path), "PHASE", None)
        if not isinstance(phase, Phase):
            raise PluginError(f"{path}: defines no PHASE")
        loaded.append(phase)
    missing = sorted({p.phase for p in projects if p.phase} - {phase.name for phase in loaded})
    if missing:
        raise PluginError(f"{directory / 'plugin.py'}: PROJECTS name phases it does not have: {', '.join(missing)}")
    requirements_file = directory / "requirements.txt"
    requirements = tuple(text for text in (raw.split("#", 1)[0].strip() for raw in requirements_file.read_text()
                                           .splitlines()) if text) if requirements_file.exists() else ()
    return Plugin(name=line.name, root=root, source=line.source, ref=line.ref, projects=projects, phases=tuple(loaded),
                  requirements=requirements, file=line.file, line=line.line, commit=_head(root))


def _import(plugin: str, part: str, path: Path) -> ModuleType:
    """Import a plugin file under a name of its own (minstack_plugin_<name>_<part>), afresh."""
    name = f"minstack_plugin_{re.sub(r'[^A-Za-z0-9_]', '_', plugin)}_{part}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # a plugin's own bug, reported with its file
        sys.modules.pop(name, None)
        raise PluginError(f"{path}: {type(error).__name__}: {error}") from error
    return module


def _head(root: Path) -> str:
    if not (root / ".git").exists():
        return ""
    done = _git("-C", str(root), "rev-parse", "--short", "HEAD", timeout=30)
    return done.stdout.strip() if done.returncode == 0 else ""
