"""Projects and libraries from git checkouts instead of the locked releases: DevStack's knobs.

Everything comes from the release lock (files/requirements/<release>-lock.txt)
except what the user names:

- a catalogue project with a Python distribution (keystone, glance, placement,
  nova, neutron, horizon) is "from git" when its ``<NAME>_REPO``, ``<NAME>_BRANCH``
  or ``<NAME>_DIR`` is set;
- a library is "from git" when it is in ``LIBS_FROM_GIT`` (``oslo.log,python-novaclient``);
  its keys carry DevStack's names: :func:`variable_prefix` (oslo.log -> ``OSLOLOG_REPO``).

Two ways to have a checkout:

- **managed** (REPO or BRANCH set): minstack clones ``<NAME>_REPO`` (default
  ``$GIT_BASE/openstack/<name>.git``; a URL, a ``file://`` URL or a local path)
  into ``<NAME>_DIR`` (default ``$DEST/<name>``, as DevStack) and checks out
  ``<NAME>_BRANCH`` (default ``stable/<release>``: a branch, tag, sha, or a Gerrit
  ref ``refs/changes/NN/NNNNNN/P``, fetched and checked out as FETCH_HEAD).  Every
  run fetches it again (a branch may have new commits; not with ``OFFLINE=True``)
  and moves the tree when it points elsewhere.  It never throws away work: a tree
  with uncommitted changes, or a local branch with commits the remote lacks, is
  refused with a message, unless ``RECLONE=True`` (then it is forced).
- **in place** (only DIR set): the developer's own tree (a mounted ~/src/nova) is
  used as it is -- never cloned, fetched or checked out; DevStack's NOVA_DIR with
  RECLONE off.

Each checkout is installed editable (``uv pip install --no-deps -e``) into the
services' venv, once per commit (its dependencies come from the lock), so editing
a file and restarting the service is enough.  When a checkout's commit changed,
the daemons that run its code are asked to restart (a project's own, or every
daemon in the venv for a library); nothing else restarts.

Git runs as root with ``safe.directory=*`` passed through GIT_CONFIG_* (so pbr's
own git calls work on the stack user's trees too), never prompts, and gives up
on a stalled host: :func:`preflight` tries every remote with ``git ls-remote``
before anything on the host changes, so an unreachable host is reported in
seconds with its URL.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from minstack.errors import MinstackError
from minstack.phase import Step
from minstack.versions import canonical, dist_info, dist_infos

# git never asks for a password, never waits on a stalled transfer, and trusts trees
# owned by another user (root works in the stack user's checkouts; pbr runs git there too).
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_HTTP_LOW_SPEED_LIMIT": "1000", "GIT_HTTP_LOW_SPEED_TIME": "10",
           "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o ConnectTimeout=10",
           "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*"}
REACH_TIMEOUT = 20     # seconds git ls-remote may take before the host counts as unreachable
FETCH_TIMEOUT = 900    # a first clone of nova over a slow link

GERRIT_REF = re.compile(r"refs/changes/(\d{2})/(\d+)/(\d+)")
FULL_SHA = re.compile(r"[0-9a-f]{40}")
SHORT_SHA = re.compile(r"[0-9a-f]{7,40}")
URL_SCHEMES = ("http", "https", "git", "ssh", "file")
PROJECT_FILES = ("setup.cfg", "setup.py", "pyproject.toml")   # what makes a directory installable

# DevStack's stackrc abbreviates some libraries' variables; the rest follow variable_prefix()'s rule.
PREFIX_EXCEPTIONS = {"oslo.concurrency": "OSLOCON", "oslo.config": "OSLOCFG", "oslo.context": "OSLOCTX",
                     "oslo.messaging": "OSLOMSG", "oslo.middleware": "OSLOMID", "oslo.rootwrap": "OSLORWRAP",
                     "python-brick-cinderclient-ext": "BRICK_CINDERCLIENT", "diskimage-builder": "DIB"}


def variable_prefix(name: str) -> str:
    """The prefix of a repository's DevStack variables (<PREFIX>_REPO, _BRANCH, _DIR).

    nova -> NOVA, oslo.log -> OSLOLOG (oslo.X: OSLO + X without punctuation),
    python-novaclient -> NOVACLIENT (python-X: X), os-vif -> OS_VIF (else: punctuation
    becomes _), plus DevStack's own abbreviations (oslo.config -> OSLOCFG).
    """
    if name in PREFIX_EXCEPTIONS:
        return PREFIX_EXCEPTIONS[name]
    if name.startswith("oslo."):
        return "OSLO" + re.sub(r"[^A-Za-z0-9]", "", name[len("oslo."):]).upper()
    if name.startswith("python-"):
        name = name[len("python-"):]
    return re.sub(r"[^A-Za-z0-9]+", "_", name).upper()


def check_ref(text: str) -> None:
    """A branch, tag, sha or Gerrit change ref git accepts; ValueError("...") continues 'KEY=value'."""
    if text.startswith("refs/changes/"):
        found = GERRIT_REF.fullmatch(text)
        if not found:
            raise ValueError("is not a Gerrit change ref refs/changes/NN/NNNNNN/P (e.g. refs/changes/34/123434/2)")
        shard, change, _ = found.groups()
        if change[-2:].zfill(2) != shard:
            raise ValueError(f"names change {change} under {shard}/; Gerrit keeps it under "
                             f"refs/changes/{change[-2:].zfill(2)}/{change}/")
        return
    bad = (not text or text.startswith(("-", "/")) or text.endswith(("/", ".", ".lock")) or ".." in text
           or "@{" in text or "//" in text or any(c in text for c in " ~^:?*[\\") or any(ord(c) < 33 for c in text))
    if bad:
        raise ValueError("is not a git branch, tag or sha")


def check_repo(text: str) -> None:
    """A URL git can fetch from (http(s), git, ssh, file) or an absolute local path."""
    if text.startswith("/"):
        return
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in URL_SCHEMES or not (parts.netloc or parts.scheme == "file") or " " in text:
        raise ValueError("is not a git URL (https://, git://, ssh://, file://) or an absolute local path")


def local_path(repo: str) -> Path | None:
    """The directory of a local repository (a path or a file:// URL); None for a remote one."""
    if repo.startswith("/"):
        return Path(repo)
    if repo.startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlsplit(repo).path))
    return None


@dataclass(frozen=True)
class Checkout:
    """One project or library the venv gets from a git tree."""

    name: str             # the repository and directory name: nova, oslo.log
    distribution: str     # its name in the lock and the venv: nova, openstack-placement, oslo-log
    repo: str             # where it is cloned from; "" when the tree is used in place
    ref: str              # branch, tag, sha or refs/changes/NN/NNNNNN/P
    dir: Path             # the tree

    @property
    def in_place(self) -> bool:
        """The developer's own tree: never cloned, fetched or moved."""
        return not self.repo

    @property
    def prefix(self) -> str:
        return variable_prefix(self.name)

    @property
    def is_change(self) -> bool:
        return bool(GERRIT_REF.fullmatch(self.ref))

    def describe(self) -> str:
        if self.in_place:
            return f"{self.name}: {self.dir} as it is ({self.prefix}_DIR)"
        return f"{self.name}: {self.repo} {self.ref} in {self.dir}"


# ---- git -------------------------------------------------------------------------------------
class Git:
    """git on one tree, through the phase's shell (every command logged)."""

    def __init__(self, sh, tree: Path):
        self.sh = sh
        self.tree = tree

    def run(self, *args: str, check: bool = True, timeout: float | None = None, quiet: bool = True):
        return self.sh.run(["git", "-C", str(self.tree), *args], env=GIT_ENV, check=check, timeout=timeout,
                           quiet=quiet)

    def sha(self, rev: str) -> str | None:
        found = self.run("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
        return found.stdout.strip() if found.ok else None

    def head(self) -> str | None:
        return self.sha("HEAD")

    def modified(self) -> list[str]:
        """Tracked files with uncommitted changes (untracked files, such as pbr's egg-info, do not count)."""
        found = self.run("status", "--porcelain", "--untracked-files=no", check=False)
        return [line[3:] for line in found.stdout.splitlines()] if found.ok else []

    def is_ancestor(self, older: str, newer: str) -> bool:
        return self.run("merge-base", "--is-ancestor", older, newer, check=False).ok


def is_git_tree(path: Path) -> bool:
    return (path / ".git").exists()


def reach(sh, url: str, ref: str) -> list[str]:
    """`git ls-remote url [ref]`: the refs it lists (raises a clear error when url cannot be reached)."""
    result = sh.run(["timeout", str(REACH_TIMEOUT), "git", "ls-remote", url, *([ref] if ref else [])],
                    env=GIT_ENV, check=False, timeout=REACH_TIMEOUT + 5, quiet=True)
    if not result.ok:
        why = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        if result.returncode in (124, -9):
            why = f"no answer within {REACH_TIMEOUT} s"
        raise MinstackError(f"cannot reach the git repository {url}: {why}")
    return [line.split("\t", 1)[1] for line in result.stdout.splitlines() if "\t" in line]


def preflight(settings, sh) -> None:
    """Before anything changes: every managed checkout's remote answers, and knows its ref.

    Skipped with OFFLINE=True (then only the trees already in $DEST are used) and where
    git is not installed yet (the venv phase installs it; its fetch reports the same way).
    """
    if settings.offline or not shutil.which("git"):
        return
    for checkout in settings.checkouts:
        if checkout.in_place:
            continue
        try:
            refs = reach(sh, checkout.repo, "" if SHORT_SHA.fullmatch(checkout.ref) else checkout.ref)
        except MinstackError as error:
            raise MinstackError(f"{error} ({checkout.prefix}_REPO). Point {checkout.prefix}_REPO at a local "
                                f"clone (a path or file:// URL), set {checkout.prefix}_DIR to a tree to use as "
                                f"it is, or set OFFLINE=True to use the trees already in {checkout.dir.parent}; "
                                "nothing was changed") from None
        if not SHORT_SHA.fullmatch(checkout.ref) and not refs:
            raise MinstackError(f"{checkout.prefix}_BRANCH={checkout.ref}: {checkout.repo} has no branch, tag or "
                                "change of that name; nothing was changed")


def target(git: Git, checkout: Checkout, settings) -> str:
    """The commit checkout.ref names, fetched from its remote first (unless OFFLINE)."""
    if settings.offline:
        if checkout.is_change:  # fetched once; offline there is nothing newer to look at
            return git.head()
        for rev in (f"refs/remotes/origin/{checkout.ref}", checkout.ref):
            if sha := git.sha(rev):
                return sha
        raise MinstackError(f"OFFLINE=True: {checkout.dir} has no {checkout.ref} ({checkout.prefix}_BRANCH); "
                            "fetch it once while online, or point the setting at what is there")
    depth = ["--depth", str(settings.git_depth)] if settings.git_depth else []
    if FULL_SHA.fullmatch(checkout.ref) and git.sha(checkout.ref) and not settings.reclone:
        return checkout.ref  # a sha is a sha: nothing to fetch when it is here
    if git.run("remote", "get-url", "origin", check=False).stdout.strip() != checkout.repo:  # <NAME>_REPO moved
        git.run("remote", "remove", "origin", check=False)
        git.run("remote", "add", "origin", checkout.repo)
    fetched = git.run("fetch", *depth, "origin", checkout.ref, check=False, timeout=FETCH_TIMEOUT, quiet=False)
    if fetched.ok:
        return git.sha("FETCH_HEAD")
    if SHORT_SHA.fullmatch(checkout.ref):  # a sha the server will not hand out alone: fetch everything
        git.run("fetch", *depth, "--tags", "origin", timeout=FETCH_TIMEOUT, quiet=False)
        if sha := git.sha(checkout.ref):
            return sha
    raise MinstackError(f"{checkout.prefix}_BRANCH={checkout.ref}: git fetch from {checkout.repo} failed: "
                        + (fetched.stderr.strip().splitlines() or ["no output"])[-1])


@dataclass(frozen=True)
class Move:
    """What a checkout step will do: clone first, and/or move the tree to a commit."""

    clone: bool
    sha: str | None   # None: known only after the clone


def wanted_move(sh, checkout: Checkout, settings) -> Move | None:
    """The observation of a checkout step: None when the tree is at what its ref names."""
    if not is_git_tree(checkout.dir):
        return Move(clone=True, sha=None)
    git = Git(sh, checkout.dir)
    sha = target(git, checkout, settings)
    return None if git.head() == sha else Move(clone=False, sha=sha)


def clone(sh, checkout: Checkout, settings) -> None:
    if checkout.dir.exists() and any(checkout.dir.iterdir()):
        raise MinstackError(f"{checkout.dir} exists and is not a git checkout; move it away, or set "
                            f"{checkout.prefix}_DIR to use it as it is")
    depth = ["--depth", str(settings.git_depth)] if settings.git_depth and not local_path(checkout.repo) else []
    sh.run(["git", "clone", "--no-checkout", *depth, checkout.repo, str(checkout.dir)], env=GIT_ENV,
           timeout=FETCH_TIMEOUT)


def move(sh, checkout: Checkout, settings, seen: Move) -> str:
    """Clone if needed and check out what the ref names, never losing work unless RECLONE=True."""
    if seen.clone:
        clone(sh, checkout, settings)
    git = Git(sh, checkout.dir)
    sha = seen.sha or target(git, checkout, settings)
    force = ["--force"] if settings.reclone or seen.clone else []  # a fresh --no-checkout clone has no files yet
    modified = [] if seen.clone else git.modified()
    if modified and not settings.reclone:
        raise MinstackError(f"{checkout.dir} has uncommitted changes ({', '.join(modified[:3])}"
                            f"{', ...' if len(modified) > 3 else ''}); {checkout.prefix}_BRANCH={checkout.ref} "
                            f"is {sha[:7]}: commit or stash them, or set RECLONE=True to discard them")
    branch = git.sha(f"refs/remotes/origin/{checkout.ref}") == sha and not checkout.is_change
    if branch:
        local = git.sha(f"refs/heads/{checkout.ref}")
        if local and not git.is_ancestor(local, sha) and not settings.reclone:
            raise MinstackError(f"{checkout.dir}: the local branch {checkout.ref} has commits that "
                                f"{checkout.repo} lacks; push or rename it, or set RECLONE=True to reset it to "
                                f"{sha[:7]}")
        git.run("checkout", *force, "-B", checkout.ref, sha, quiet=False)
    else:
        git.run("checkout", *force, "--detach", sha, quiet=False)
    sh.run(["chown", "-R", f"{settings.stack_user}:", str(checkout.dir)])  # the stack user's, as in DevStack
    return sha


# ---- what a step can key on ----------------------------------------------------------------------
def install_key(sh, checkout: Checkout) -> str:
    """What an editable install depends on: the commit (a git tree) and the packaging files."""
    head = Git(sh, checkout.dir).head() if is_git_tree(checkout.dir) else None
    packaging = hashlib.sha256()
    for name in PROJECT_FILES:
        path = checkout.dir / name
        packaging.update(path.read_bytes() if path.is_file() else b"-")
    return f"{head or 'no git'} packaging {packaging.hexdigest()[:12]}"


def editable_location(venv: Path, distribution: str) -> Path | None:
    """Where an editable install of distribution lives (its direct_url.json), or None."""
    found = dist_info(venv, distribution)
    direct = found / "direct_url.json" if found else None
    if not direct or not direct.is_file():
        return None
    data = json.loads(direct.read_text())
    if not data.get("dir_info", {}).get("editable") or not data.get("url", "").startswith("file://"):
        return None
    return Path(urllib.parse.unquote(urllib.parse.urlsplit(data["url"]).path))


def migrations_key(tree: Path) -> str:
    """A fingerprint of every file under a directory whose name says migration(s): db syncs key on it."""
    digest = hashlib.sha256()
    skip = {".git", ".tox", "doc", "releasenotes", "api-ref", "__pycache__"}
    for root, dirs, files in os.walk(tree):
        dirs[:] = sorted(d for d in dirs if d not in skip and not d.endswith(".egg-info"))
        if "migrat" not in os.path.relpath(root, tree):
            continue
        for name in sorted(files):
            if name.endswith((".py", ".sql", ".ini", ".mako")):
                path = Path(root, name)
                digest.update(str(path.relative_to(tree)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def source_of(sh, venv: Path, distribution: str) -> str | None:
    """'checkout <dir> @ <short sha>' (+ ', modified'), or None for a release."""
    tree = editable_location(venv, distribution)
    if tree is None:
        return None
    if not is_git_tree(tree):
        return f"{tree} (in place, no git)"
    git = Git(sh, tree)
    head = git.head()
    return f"checkout {tree} @ {head[:7] if head else '?'}" + (" (modified)" if git.modified() else "")


# ---- the steps (in the venv phase, after the lock) ---------------------------------------------
def daemons_running(ctx, distribution: str) -> list[str]:
    """The enabled daemons that run a distribution's code: its project's, or every venv daemon for a library."""
    from minstack import catalogue
    from minstack.pipeline import load_phases, select
    project = next((p.name for p in catalogue.projects() if p.distribution
                    and canonical(p.distribution) == canonical(distribution)), "")
    venv = str(ctx.settings.venv)
    names = []
    for phase in select(load_phases(), ctx.settings):
        for daemon in phase.daemons(ctx):
            if not daemon.argv or not daemon.argv[0].startswith(venv):
                continue
            try:
                owner = catalogue.project_of_service(daemon.service).name
            except KeyError:
                owner = ""
            if not project or owner == project:
                names.append(daemon.name)
    return names


def develop_step(checkout: Checkout) -> str:
    return f"develop {checkout.name}"


def steps(ctx, uv, env: dict, lock_key: str) -> list[Step]:
    """For each checkout: bring the tree to its ref (managed ones), then install it editable, once per commit."""
    s = ctx.settings
    python = s.venv / "bin" / "python"
    found = []
    for checkout in s.checkouts:
        if not checkout.in_place:
            found.append(Step(f"git {checkout.name}", lambda seen, c=checkout: move(ctx.sh, c, s, seen),
                              f"{checkout.repo} {checkout.ref} checked out in {checkout.dir}",
                              observe=lambda c=checkout: wanted_move(ctx.sh, c, s)))

        def install(c=checkout):
            ctx.sh.run([uv(), "pip", "install", "--python", python, "--no-deps", "--compile-bytecode", "-e", c.dir],
                       env={**env, **GIT_ENV})
            if not c.in_place:  # pbr wrote its egg-info as root: the tree stays the stack user's
                ctx.sh.run(["chown", "-R", f"{s.stack_user}:", str(c.dir)])
            restart = daemons_running(ctx, c.distribution)
            ctx.log.info("%s changed: restart %s", c.name, ", ".join(restart) or "nothing")
            ctx.restart.update(restart)

        found.append(Step(develop_step(checkout), install, f"install {checkout.dir} editable into {s.venv} "
                          f"(its daemons restart)",
                          once_key=lambda c=checkout: f"{install_key(ctx.sh, c)} lock {lock_key}"))
    return found


def forget_replaced(ctx) -> None:
    """After the lock was installed: a checkout that is not installed editable from its tree
    (the lock put a release there while it was not from git) is installed again."""
    for checkout in ctx.settings.checkouts:
        if editable_location(ctx.settings.venv, checkout.distribution) != checkout.dir:
            ctx.state.forget_step(ctx.phase, develop_step(checkout))


def lock_without(lock: Path, checkouts) -> str:
    """The lock's text without the distributions that come from checkouts."""
    skip = {canonical(c.distribution) for c in checkouts}
    kept = [line for line in lock.read_text().splitlines() if canonical(pinned(line) or "") not in skip]
    return "\n".join(kept) + "\n"


def pinned(line: str) -> str | None:
    """The distribution a lock line pins (None for comments and blank lines)."""
    if not line.strip() or line.startswith("#") or line[0].isspace():
        return None
    return re.split(r"[=<>!~;\s\[]", line.strip(), maxsplit=1)[0]


def released_again(venv: Path, checkouts) -> list[str]:
    """Distributions installed editable that no checkout names any more: the lock puts releases back."""
    wanted = {canonical(c.distribution) for c in checkouts}
    return sorted(name for name in dist_infos(venv) if name not in wanted and editable_location(venv, name))


def locked_distributions(lock: Path) -> dict[str, str]:
    """The distributions a lock pins: canonical name -> the name as the lock writes it."""
    names = [pinned(line) for line in lock.read_text().splitlines()]
    return {canonical(name): name for name in names if name}
