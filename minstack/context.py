"""What a phase works with: settings, its own logger and shell, the supervisor,
and file helpers that change nothing when the file is already right.

Files a step keeps are described first (:class:`Wanted`: path, content, mode,
owner, the daemons a change restarts), compared with the host once
(:meth:`Context.differing`), and written only where they differ
(:meth:`Context.apply`): :meth:`Context.files_step` makes such a step.  A
restart a change asks for is kept in the state file until the daemon really
restarted, so a run that fails in between still restarts it next time.
"""
from __future__ import annotations

import grp
import logging
import os
import pwd
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from minstack import postconfig, templates
from minstack.phase import Step
from minstack.shell import Shell
from minstack.state import State


@dataclass(frozen=True)
class Wanted:
    """A file (content) or directory (content None) as a step wants it."""

    path: Path
    content: bytes | None
    mode: int = 0o644
    owner: str = "root"
    group: str | None = None
    restarts: tuple[str, ...] = ()   # daemons that must restart when it changed

    def ids(self) -> tuple[int, int]:
        uid = pwd.getpwnam(self.owner).pw_uid
        gid = grp.getgrnam(self.group).gr_gid if self.group else pwd.getpwnam(self.owner).pw_gid
        return uid, gid

    def differs(self) -> bool:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return True
        if (st.st_mode & 0o7777) != self.mode or (st.st_uid, st.st_gid) != self.ids():
            return True
        if self.content is None:
            return not self.path.is_dir()
        return not self.path.is_file() or self.path.read_bytes() != self.content


class PendingRestarts:
    """ctx.restart: daemons whose configuration changed, kept in the state file until restarted."""

    def __init__(self, state: State):
        self.state = state

    def add(self, name: str) -> None:
        self.state.ask_restart(name)

    def update(self, names) -> None:
        self.state.ask_restart(*names)

    def __contains__(self, name: str) -> bool:
        return name in self.state.pending_restarts()


@dataclass
class Context:
    settings: object  # minstack.settings.Settings
    phase: str
    log: logging.Logger
    sh: Shell
    supervisor: object  # minstack.supervisor.Supervisor
    state: State
    log_path: Path
    # what the user should read in the closing summary (a fallback taken, a choice made)
    notes: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        self.log.info("note: %s", message)
        self.notes.append(message)

    @property
    def restart(self) -> PendingRestarts:
        """The daemons a changed file asked to restart (this run or a failed earlier one)."""
        return PendingRestarts(self.state)

    def start(self, daemon) -> str:
        """Start daemon unless it runs; restart it when its configuration changed since it started."""
        restart = daemon.name in self.restart or bool(self.supervisor.stale(daemon))
        action = self.supervisor.ensure_running(daemon, self.log, restart=restart)
        self.state.restarted(daemon.name)
        return action

    def start_needed(self, daemon) -> str | None:
        """Why daemon must be (re)started, or None when it runs with its current configuration."""
        if not self.supervisor.is_running(daemon):
            return "not running"
        if daemon.name in self.restart:
            return "its configuration changed"
        return self.supervisor.stale(daemon)

    def start_step(self, daemon, describe: str = "", name: str | None = None) -> Step:
        return Step(name or f"start {daemon.name}", lambda why: self.start(daemon),
                    describe or f"start {daemon.name} and wait until it answers",
                    observe=lambda: self.start_needed(daemon))

    # ---- files a step keeps ----------------------------------------------------------------------
    def template(self, template: str, path: str | Path, *, mode: int = 0o644, owner: str = "root",
                 group: str | None = None, restarts: tuple[str, ...] = (), **extra) -> Wanted:
        """A file rendered from files/templates, with local.conf's post-config sections for it merged in."""
        content = templates.render(template, self.settings, **extra)
        merges = postconfig.entries_for(self.settings, path)
        if merges:  # local.conf [[post-config|<this file>]]: the user's values win
            content = postconfig.merge_ini(content, merges)
        return Wanted(Path(path), content.encode(), mode, owner, group, tuple(restarts))

    @staticmethod
    def directory(path: str | Path, *, mode: int = 0o755, owner: str = "root", group: str | None = None) -> Wanted:
        return Wanted(Path(path), None, mode, owner, group)

    @staticmethod
    def copy(source: str | Path, path: str | Path, *, mode: int = 0o644, owner: str = "root",
             group: str | None = None, restarts: tuple[str, ...] = ()) -> Wanted:
        """A copy of a file that ships elsewhere (a paste file in the venv)."""
        return Wanted(Path(path), Path(source).read_bytes(), mode, owner, group, tuple(restarts))

    @staticmethod
    def copy_of(path: str | Path, content: str | bytes, *, mode: int = 0o644, owner: str = "root",
                group: str | None = None, restarts: tuple[str, ...] = ()) -> Wanted:
        """A file with this content."""
        data = content.encode() if isinstance(content, str) else content
        return Wanted(Path(path), data, mode, owner, group, tuple(restarts))

    @staticmethod
    def differing(wanted: list[Wanted]) -> list[Wanted]:
        return [item for item in wanted if item.differs()]

    def apply(self, wanted: list[Wanted]) -> None:
        """Bring each item to what it says (directories first, as listed); note the restarts."""
        for item in wanted:
            if item.content is None:
                self.ensure_dir(item.path, mode=item.mode, owner=item.owner, group=item.group)
            elif self.write_file(item.path, item.content, mode=item.mode, owner=item.owner, group=item.group):
                self.restart.update(item.restarts)

    def files_step(self, name: str, describe: str, build: Callable[[], list[Wanted]]) -> Step:
        """A step that keeps files and directories as build() describes them, looking once."""
        return Step(name, self.apply, describe, observe=lambda: self.differing(build()))

    # ---- files ---------------------------------------------------------------------------
    def write_file(self, path: str | Path, content: str | bytes, *, mode: int = 0o644,
                   owner: str = "root", group: str | None = None) -> bool:
        """Write path only if its content, mode or owner differ; True when something changed."""
        path = Path(path)
        data = content.encode() if isinstance(content, str) else content
        uid = pwd.getpwnam(owner).pw_uid
        gid = grp.getgrnam(group).gr_gid if group else pwd.getpwnam(owner).pw_gid
        changed = False
        if not path.exists() or path.read_bytes() != data:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.minstack-tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chown(tmp, uid, gid)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
            self.log.info("wrote %s", path)
            return True
        st = path.stat()
        if (st.st_mode & 0o7777) != mode:
            os.chmod(path, mode)
            changed = True
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.chown(path, uid, gid)
            changed = True
        if changed:
            self.log.info("fixed mode/owner of %s", path)
        return changed

    # ---- ./unstack.py --clean ------------------------------------------------------------------
    def drop_databases(self, *names: str) -> None:
        """Drop this phase's databases; if MariaDB is already down, say so rather than pretend."""
        from minstack import mysql
        for name in names:
            try:
                mysql.drop_database(name)
            except Exception as exc:
                self.log.warning("could not drop database %s: %s", name, exc)

    def remove_trees(self, *paths: str | Path) -> None:
        """Remove directories this phase created (never crossing into another file system)."""
        for path in paths:
            if Path(path).exists():
                self.sh.run(["rm", "-rf", "--one-file-system", str(path)])

    def remove_files(self, *paths: str | Path) -> None:
        """Remove files this phase wrote (config drop-ins, units); a missing one is fine."""
        for path in map(Path, paths):
            if path.exists() or path.is_symlink():
                path.unlink()
                self.log.info("removed %s", path)

    def ensure_dir(self, path: str | Path, *, mode: int = 0o755, owner: str = "root",
                   group: str | None = None) -> Path:
        path = Path(path)
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            self.log.info("created %s", path)
        uid = pwd.getpwnam(owner).pw_uid
        gid = grp.getgrnam(group).gr_gid if group else pwd.getpwnam(owner).pw_gid
        st = path.stat()
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.chown(path, uid, gid)
        if (st.st_mode & 0o7777) != mode:
            os.chmod(path, mode)
        return path
