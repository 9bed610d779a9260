"""What a phase works with: settings, its own logger and shell, the supervisor,
and file helpers that change nothing when the file is already right."""
from __future__ import annotations

import grp
import logging
import os
import pwd
from dataclasses import dataclass, field
from pathlib import Path

from minstack import postconfig, templates
from minstack.shell import Shell
from minstack.state import State


@dataclass
class Context:
    settings: object  # minstack.settings.Settings
    phase: str
    log: logging.Logger
    sh: Shell
    supervisor: object  # minstack.supervisor.Supervisor
    state: State
    log_path: Path
    # daemons whose configuration changed in this run: started again by start()
    restart: set[str] = field(default_factory=set)
    # what the user should read in the closing summary (a fallback taken, a choice made)
    notes: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        self.log.info("note: %s", message)
        self.notes.append(message)

    def start(self, daemon) -> str:
        """Start daemon unless it runs; restart it when its configuration changed in this run."""
        return self.supervisor.ensure_running(daemon, self.log, restart=daemon.name in self.restart)

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

    def render(self, template: str, path: str | Path, *, mode: int = 0o644, owner: str = "root",
               group: str | None = None, restarts: tuple[str, ...] = (), **extra) -> bool:
        """Render a template from files/templates to path (only written when it differs).

        local.conf post-config sections for this path are merged in before the compare.

        ``restarts`` names the daemons that must restart when the file changed.
        """
        content = templates.render(template, self.settings, **extra)
        merges = postconfig.entries_for(self.settings, path)
        if merges:  # local.conf [[post-config|<this file>]]: the user's values win
            content = postconfig.merge_ini(content, merges)
        changed = self.write_file(path, content, mode=mode, owner=owner, group=group)
        if changed:
            self.restart.update(restarts)
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
