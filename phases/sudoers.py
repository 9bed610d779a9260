"""/etc/sudoers.d/minstack: root for the services that need it, only through their rootwrap."""
from __future__ import annotations

import tempfile
from pathlib import Path

from minstack import catalogue, rootwrap, templates
from minstack.errors import MinstackError
from minstack.phase import Phase, Step

SUDOERS = Path("/etc/sudoers.d/minstack")


class Sudoers(Phase):
    def steps(self, ctx):
        def differs() -> str | None:
            """The sudoers text wanted, when the file differs from it."""
            text = templates.render("sudoers.j2", ctx.settings, rootwrap_confs={
                project: rootwrap.conf_path(project) for project in catalogue.rootwrap_projects(ctx.settings)})
            wanted = ctx.copy_of(SUDOERS, text, mode=0o440)
            return text if wanted.differs() else None

        def install(text: str):
            # a broken sudoers file locks sudo for everyone: let visudo judge it first
            with tempfile.NamedTemporaryFile("w", prefix="minstack-sudoers.", delete=False) as tmp:
                tmp.write(text)
            try:
                if not ctx.sh.ok(["visudo", "-cf", tmp.name]):
                    raise MinstackError(f"visudo rejects the sudoers file minstack generated: {tmp.name}")
                ctx.write_file(SUDOERS, text, mode=0o440)
            finally:
                Path(tmp.name).unlink(missing_ok=True)

        return [Step("sudoers", install, f"{SUDOERS} (0440): {ctx.settings.stack_user} may run the "
                                         "services' rootwrap as root, nothing else", observe=differs)]

    def clean(self, ctx):
        if SUDOERS.exists():
            SUDOERS.unlink()
            ctx.log.info("removed %s", SUDOERS)


# On for the services that call their rootwrap through sudo (catalogue: Project.rootwrap).
PHASE = Sudoers(name="sudoers", requires=("venv", "prereqs"), services=tuple(
    service for project in catalogue.PROJECTS if project.supported for service in project.rootwrap))
