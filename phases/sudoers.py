"""/etc/sudoers.d/minstack: root for the services that need it, only through their rootwrap."""
from __future__ import annotations

import tempfile
from pathlib import Path

from minstack import rootwrap, templates
from minstack.errors import MinstackError
from minstack.phase import Phase, Step

SUDOERS = Path("/etc/sudoers.d/minstack")


class Sudoers(Phase):
    def steps(self, ctx):
        def install():
            text = templates.render("sudoers.j2", ctx.settings,
                                    nova_rootwrap_conf=rootwrap.conf_path("nova"),
                                    neutron_rootwrap_conf=rootwrap.conf_path("neutron"),
                                    cinder_rootwrap_conf=rootwrap.conf_path("cinder"))
            if SUDOERS.exists() and SUDOERS.read_text() == text:
                return
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
                                         "services' rootwrap as root, nothing else")]

    def clean(self, ctx):
        if SUDOERS.exists():
            SUDOERS.unlink()
            ctx.log.info("removed %s", SUDOERS)


PHASE = Sudoers(name="sudoers", requires=("venv", "prereqs"), services=("n-cpu", "q-ovn-agent", "c-vol"))
