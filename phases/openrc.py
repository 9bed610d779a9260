"""openrc at the repository root and /etc/openstack/clouds.yaml, with DevStack's names."""
from __future__ import annotations

import os
from pathlib import Path

from minstack import identity
from minstack.paths import REPO, repo_owner
from minstack.phase import Phase

OPENRC = REPO / "openrc"
CLOUDS_YAML = Path("/etc/openstack/clouds.yaml")


class OpenRC(Phase):
    def steps(self, ctx):
        s = ctx.settings
        region = identity.REGION
        return [
            ctx.files_step("openrc", f"{OPENRC} (0600): source openrc [user] [project]", lambda: [
                ctx.template("openrc/openrc.j2", OPENRC, mode=0o600, owner=repo_owner(), region=region)]),
            ctx.files_step("clouds.yaml", f"{CLOUDS_YAML} (0640 root:{s.stack_user}): devstack, devstack-admin, "
                                          "devstack-alt, …", lambda: [
                ctx.template("openrc/clouds.yaml.j2", CLOUDS_YAML, mode=0o640, owner="root", group=s.stack_user,
                             region=region)]),
        ]

    def summary(self, settings):
        return [("credentials", f"source {os.path.relpath(OPENRC)} admin admin   "
                                f"(or OS_CLOUD=devstack-admin)")]

    def clean(self, ctx):
        for path in (OPENRC, CLOUDS_YAML):
            if path.exists():
                path.unlink()
                ctx.log.info("removed %s", path)


PHASE = OpenRC(name="openrc", requires=("accounts",), services=("key",))
