"""Distro packages for every enabled phase, in one apt-get run (files/debs/<list>)."""
from __future__ import annotations

from minstack import apt
from minstack.phase import Phase, Step


class Packages(Phase):
    def wanted(self, ctx) -> list[str]:
        from minstack.pipeline import load_phases  # the phases that will run decide the packages
        lists = ["general"]
        for phase in load_phases():
            if phase.enabled(ctx.settings):
                lists += [name for name in phase.debs if name not in lists]
        packages: list[str] = []
        for name in lists:
            packages += [p for p in apt.read_list(name) if p not in packages]
        return packages

    def steps(self, ctx):
        packages = self.wanted(ctx)
        return [Step("install", lambda: apt.install(ctx.sh, apt.missing(ctx.sh, packages)),
                     f"apt-get install {len(packages)} packages (only the missing ones)",
                     check=lambda: not apt.missing(ctx.sh, packages))]


PHASE = Packages(name="packages", requires=("prereqs",))
