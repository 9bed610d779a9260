"""The catalogue (minstack/catalogue.py) is the one place services are declared: the phases, the
service names, the settings, the ports and the templates agree with it."""
from __future__ import annotations

import re

import pytest

from minstack import catalogue, services
from minstack.paths import PHASES, REPO
from minstack.pipeline import load_phases
from minstack.settings import CONFIG_FILE_KEYS, KEYS

PHASE_LIST = load_phases()
BY_NAME = {phase.name: phase for phase in PHASE_LIST}


def test_every_supported_project_has_its_phase_and_the_phase_its_services():
    for project in catalogue.PROJECTS:
        if not project.supported:
            continue
        assert project.phase in BY_NAME, f"{project.name}: no phases/{project.phase}.py"
        if project.services:
            assert set(project.services) <= set(BY_NAME[project.phase].services), project.name


def test_a_phase_that_installs_catalogue_projects_is_switched_on_by_exactly_their_services():
    for phase in PHASE_LIST:
        declared = catalogue.phase_services(phase.name)
        if declared:
            assert tuple(phase.services) == declared, phase.name


def test_phases_only_name_services_the_catalogue_knows():
    known = set(catalogue.known_services())
    for phase in PHASE_LIST:
        assert set(phase.services) <= known, phase.name


def test_supported_services_are_exactly_those_of_projects_with_a_phase():
    assert services.SUPPORTED_SERVICES == {name for p in catalogue.PROJECTS if p.phase for name in p.services}
    assert not services.SUPPORTED_SERVICES & set(services.NOT_PLANNED)


def test_every_name_is_declared_once():
    names = [name for p in catalogue.PROJECTS for name in p.services]
    assert len(names) == len(set(names))
    metas = [meta for p in catalogue.PROJECTS for meta in p.meta]
    assert len(metas) == len(set(metas)) and not set(metas) & set(names)
    assert len({p.name for p in catalogue.PROJECTS}) == len(catalogue.PROJECTS)


def test_ports_are_unique_and_apis_belong_to_their_project():
    ports = catalogue.ports()
    assert len(set(ports.values())) == len(ports)
    for project in catalogue.PROJECTS:
        for api in project.apis:
            assert api.service in project.services
        if project.catalog:
            assert project.catalog.api in {api.daemon for api in project.apis}


def test_the_config_file_settings_come_from_the_catalogue():
    assert set(CONFIG_FILE_KEYS) == set(catalogue.config_file_defaults())
    for key in CONFIG_FILE_KEYS:
        assert KEYS[key].kind == "file" and KEYS[key].attribute == ""


def test_meta_names_cover_their_projects():
    metas = catalogue.meta_names()
    assert set(metas["cinder"]) == {"c-api", "c-sch", "c-vol", "c-bak"}
    assert set(metas["swift"]) == {"s-proxy", "s-object", "s-container", "s-account"}
    assert "n-cpu" in metas["nova"] and "q-svc" in metas["neutron"] and metas["glance"] == ("g-api",)


def test_tempest_service_available_follows_the_enabled_services():
    class S:
        enabled_services = frozenset({"n-api", "g-api"})

        def is_enabled(self, *names):
            return any(n in self.enabled_services for n in names)

    available = catalogue.tempest_available(S())
    assert available["nova"] and available["glance"]
    assert not available["neutron"] and not available["cinder"] and not available["swift"]


# Facts several phases share live in the catalogue only: a phase that writes one of these literals
# has copied it instead of importing it.
SHARED_LITERALS = [r"\b6640\b", r"\b6641\b", r"\b6642\b", r"\bbr-ex\b", r"\bbr-int\b",
                   r'"router1"', r'"cirros256"', r"\b5000\b", r"\b9696\b", r"\b8774\b",
                   r"\b9292\b", r"\b8778\b", r"\b11211\b", r"\b5672\b"]


@pytest.mark.parametrize("path", sorted(PHASES.glob("*.py")) + sorted((REPO / "minstack").glob("*.py")),
                         ids=lambda p: p.name)
def test_no_phase_copies_a_shared_fact(path):
    if path.name == "catalogue.py":
        return
    code = re.sub(r'"""[\s\S]*?"""', "", path.read_text())  # docstrings and comments may explain them
    code = "\n".join(line.split("#")[0] for line in code.splitlines())
    found = [pattern for pattern in SHARED_LITERALS if re.search(pattern, code)]
    assert not found, f"{path.name} copies {found}: import it from minstack.catalogue"
