"""One virtualenv for every OpenStack service ($DATA_DIR/venv), from the release's pinned lock file.

Installed with uv (several times faster than pip here: tools/bench_install.py
measures both). The venv is owned by root: the services run as the stack user
and can read, but not change, their own code.

A minstack plugin's requirements.txt (minstack/plugins.py) is installed after
it, with the lock as constraints.

What comes from git checkouts instead (NOVA_REPO, LIBS_FROM_GIT, ...) is left
out of the lock and installed editable after it (minstack/checkouts.py); a
project no longer from git gets its release back, and its daemons restart.
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from minstack import checkouts
from minstack.errors import MinstackError
from minstack.paths import REQUIREMENTS
from minstack.phase import Phase, Step

OPENSTACK_CLI_LINK = Path("/usr/local/bin/openstack")


def uv_binary() -> str:
    """uv comes with minstack's own venv (requirements.txt)."""
    candidate = Path(sys.executable).parent / "uv"
    if not candidate.exists():
        raise MinstackError(f"uv not found at {candidate}; re-run ./stack.py to refresh minstack's venv")
    return str(candidate)


def lock_file(release: str) -> Path:
    path = REQUIREMENTS / f"{release}-lock.txt"
    if not path.exists():
        raise MinstackError(f"no lock file for release {release}: {path}")
    return path


class Venv(Phase):
    def steps(self, ctx):
        s = ctx.settings
        venv = s.venv
        python = venv / "bin" / "python"
        # the release's lock without what comes from checkouts
        lock = s.state_dir / f"{s.openstack_release}-lock.txt"
        locked = checkouts.lock_without(lock_file(s.openstack_release), s.checkouts)
        fingerprint = hashlib.sha256(locked.encode()).hexdigest()[:16]
        # uv keeps its cache outside DATA_DIR, so a re-stack after unstack --clean is warm.
        env = {"UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", "/var/cache/minstack/uv"),
               "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}

        def install():
            ctx.write_file(lock, locked)
            released = checkouts.released_again(venv, s.checkouts)  # editable now, a release from here on
            ctx.sh.run([uv_binary(), "pip", "install", "--python", python, "--compile-bytecode", "-r", lock], env=env)
            for name in released:
                ctx.restart.update(checkouts.daemons_running(ctx, name))
            checkouts.forget_replaced(ctx)

        def install_plugin(plugin):
            wanted = s.state_dir / f"plugin-{plugin.name}-requirements.txt"
            ctx.write_file(wanted, "\n".join(plugin.requirements) + "\n")
            # the release's lock constrains the plugin's dependencies: nothing minstack installed moves
            ctx.sh.run([uv_binary(), "pip", "install", "--python", python, "--compile-bytecode", "-r", wanted,
                        "-c", lock], env=env)

        def link_cli():
            if OPENSTACK_CLI_LINK.is_symlink() or OPENSTACK_CLI_LINK.exists():
                OPENSTACK_CLI_LINK.unlink()
            OPENSTACK_CLI_LINK.symlink_to(venv / "bin" / "openstack")

        return [
            Step("create", lambda: ctx.sh.run([uv_binary(), "venv", "--python", "/usr/bin/python3", "--seed",
                                               venv], env=env),
                 f"create {venv} with Debian's python3", check=python.exists),
            Step("install", install, f"install OpenStack {s.openstack_release} from {lock.name}"
                 + (f" (but {', '.join(c.name for c in s.checkouts)})" if s.checkouts else ""), once_key=fingerprint),
            Step("openstack cli", link_cli, f"{OPENSTACK_CLI_LINK} -> the venv's openstack",
                 check=lambda: OPENSTACK_CLI_LINK.is_symlink()
                 and OPENSTACK_CLI_LINK.resolve() == (venv / "bin" / "openstack").resolve()),
            *checkouts.steps(ctx, uv_binary, env, fingerprint),
            *(Step(f"plugin {plugin.name}", lambda plugin=plugin: install_plugin(plugin),
                   f"install {', '.join(plugin.requirements)} for plugin {plugin.name}, the lock as constraints",
                   once_key=f"{fingerprint}:{plugin.requirements_key()}") for plugin in s.plugins
              if plugin.requirements),
        ]

    def clean(self, ctx):
        if OPENSTACK_CLI_LINK.is_symlink() and str(os.readlink(OPENSTACK_CLI_LINK)).startswith(
                str(ctx.settings.venv)):
            OPENSTACK_CLI_LINK.unlink()
            ctx.log.info("removed %s", OPENSTACK_CLI_LINK)


PHASE = Venv(name="venv", requires=("packages", "prereqs"), debs=("venv",))
