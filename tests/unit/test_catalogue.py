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
    assert services.supported_services() == {name for p in catalogue.PROJECTS if p.phase for name in p.services}
    assert not services.supported_services() & set(services.not_planned())


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


# ---- *_CONF is honoured: every command line and WSGI server names the file where the user put it ------
def phase_context(tmp_path, text):
    import logging

    from minstack.context import Context
    from minstack.state import State
    from test_settings import load
    settings = load(tmp_path, text)
    return settings, lambda phase: Context(settings=settings, phase=phase.name, log=logging.getLogger("t"),
                                           sh=None, supervisor=None, state=State(tmp_path / "state.json"),
                                           log_path=tmp_path / "p.log")


def test_a_moved_nova_conf_is_what_nova_reads(tmp_path):
    settings, make = phase_context(tmp_path, "NOVA_CONF=/srv/nova/mine.conf\nNOVA_CPU_CONF=/srv/nova/cpu.conf\n")
    nova = BY_NAME["nova"]
    ctx = make(nova)
    argv = {d.name: d.argv for d in nova.daemons(ctx)}
    assert argv["nova-conductor"][-2:] == ["--config-file", "/srv/nova/mine.conf"]
    assert argv["nova-compute"][-2:] == ["--config-file", "/srv/nova/cpu.conf"]
    api = catalogue.api("nova-api")
    ini = nova.uwsgi_config(ctx, api).content.decode()
    # nova.wsgi reads its paste pipelines from the first file: the paste file stays in /etc/nova
    assert "env = OS_NOVA_CONFIG_DIR=/srv/nova\n" in ini
    assert "env = OS_NOVA_CONFIG_FILES=/etc/nova/api-paste.ini;/srv/nova/mine.conf\n" in ini
    sync = nova.sync(ctx, "db sync", "db", "sync")
    assert sync.once_key is not None and "db sync" in sync.describe


def test_a_moved_neutron_conf_and_ml2_file_are_what_neutron_reads(tmp_path):
    settings, make = phase_context(tmp_path, "NEUTRON_CONF=/srv/neutron/n.conf\n"
                                             "Q_ML2_CONF_FILE=/srv/neutron/ml2.ini\n")
    neutron = BY_NAME["neutron"]
    ctx = make(neutron)
    workers = {d.name: d.argv for d in neutron.daemons(ctx)}["neutron-periodic-workers"]
    assert workers[1:] == ["--config-file", "/srv/neutron/n.conf", "--config-file", "/srv/neutron/ml2.ini"]
    ini = neutron.uwsgi_config(ctx, catalogue.api("neutron-api")).content.decode()
    assert "env = OS_NEUTRON_CONFIG_FILES=/srv/neutron/n.conf;/srv/neutron/ml2.ini\n" in ini


def test_api_services_take_their_urls_and_ports_from_the_catalogue(tmp_path):
    settings, make = phase_context(tmp_path, "HOST_IP=192.168.1.10\n")
    assert catalogue.url(settings, "nova-api") == "http://192.168.1.10:8774/v2.1"
    assert catalogue.keystone_url(settings) == "http://192.168.1.10:5000"
    glance = BY_NAME["glance"]
    [daemon] = glance.daemons(make(glance))
    assert daemon.name == "glance-api" and daemon.service == "g-api"
    assert glance.summary(settings) == [("Glance", "http://192.168.1.10:9292")]


def test_devstack_names_alias_exactly_one_unit_each(tmp_path):
    """systemctl restart minstack-n-api: each DevStack name is the alias of one daemon's unit, never
    a second unit's name (ovn-northd's databases share its service, not its unit)."""
    from minstack.supervisor import SystemdSupervisor
    settings, make = phase_context(tmp_path, "enable_service swift heat\n")
    daemons = [d for phase in PHASE_LIST if phase.enabled(settings) for d in phase.daemons(make(phase))]
    sup = SystemdSupervisor(tmp_path / "run", tmp_path / "logs")
    units = {sup.unit_name(d) for d in daemons}
    aliases = [sup.unit_alias(d) for d in daemons if sup.unit_alias(d)]
    assert len(aliases) == len(set(aliases)) and not set(aliases) & units, aliases
    assert "minstack-n-api.service" in aliases and "minstack-q-svc.service" in aliases
    # every DevStack name names a unit, its own or an alias
    assert {f"minstack-{d.service}.service" for d in daemons if d.service} <= units | set(aliases)
    text = sup.unit_text(next(d for d in daemons if d.name == "nova-api"))
    assert "\nAlias=minstack-n-api.service\n" in text


@pytest.mark.parametrize("localrc", ["", "disable_service all\nenable_service mysql\n"])
def test_every_phase_names_its_daemons_whatever_is_enabled(tmp_path, localrc):
    """./unstack.py asks every phase for its daemons, enabled or not: Swift's raised StopIteration
    on a localrc without Swift, and --clean failed on the default services."""
    settings, make = phase_context(tmp_path, localrc)
    for phase in PHASE_LIST:
        phase.daemons(make(phase))

# ---- GLANCE_USE_SWIFT: Glance's images in Swift ----------------------------------------------------------
@pytest.fixture
def paste_file(tmp_path, monkeypatch):
    """The paste file glance ships, here without a venv: the unit tests never read the host's."""
    paste = tmp_path / "shipped-glance-api-paste.ini"
    paste.write_text("[composite:glance-api-keystone]\n")
    monkeypatch.setattr(type(BY_NAME["glance"]), "shipped", lambda self, settings, name: paste)
    return paste


def glance_files(tmp_path, text):
    settings, make = phase_context(tmp_path, text)
    glance = BY_NAME["glance"]
    return settings, {str(w.path): w for w in glance.configure(make(glance)) if w.content is not None}


def swift_store_key(text: str) -> str:
    """The key as glance_store's SwiftConfigParser reads it: configparser with interpolation, then
    one pair of matching outer quotes stripped (glance_store/_drivers/swift/utils.py)."""
    import configparser
    parser = configparser.ConfigParser()
    parser.read_string(text)
    value = configparser.RawConfigParser.get(parser, "ref1", "key")
    if value and value[0] in "\"'":
        assert value[-1] == value[0]
        value = value[1:-1]
    return value


def test_glance_keeps_images_in_its_file_store_by_default(tmp_path, paste_file):
    settings, files = glance_files(tmp_path, "enable_service swift\n")
    assert set(files) == {"/etc/glance/glance-api-paste.ini", "/etc/glance/glance-api.conf"}
    conf = files["/etc/glance/glance-api.conf"].content.decode()
    assert "enabled_backends = local:file\n" in conf and "default_backend = local\n" in conf
    assert "[swift]" not in conf and "swift_store" not in conf
    assert "swift" not in BY_NAME["glance"].requirements(settings)


@pytest.mark.parametrize("password", ["plain-pw", ' it\'s 100% "$x" ; # ', '"quoted"', "%(here)s"])
def test_glance_use_swift_makes_swift_the_default_store(tmp_path, paste_file, password):
    import shlex
    settings, files = glance_files(tmp_path, f"enable_service swift\nGLANCE_USE_SWIFT=True\n"
                                             f"SERVICE_PASSWORD={shlex.quote(password)}\n")
    conf = files["/etc/glance/glance-api.conf"].content.decode()
    assert "enabled_backends = local:file, swift:swift\n" in conf and "default_backend = swift\n" in conf
    section = conf.split("\n[swift]\n")[1].split("\n[")[0]
    assert "swift_store_config_file = /etc/glance/glance-swift-store.conf\n" in section
    assert "default_swift_reference = ref1\n" in section
    assert "swift_store_create_container_on_put = true\n" in section
    store = files["/etc/glance/glance-swift-store.conf"]
    assert (store.owner, store.group, store.mode, store.restarts) == ("root", "stack", 0o640, ("glance-api",))
    text = store.content.decode()
    assert "auth_address = http://192.168.1.10:5000/v3\n" in text and "user = service:glance\n" in text
    assert swift_store_key(text) == password
    # only this file holds the swift store's password; glance-api.conf only names it
    assert "swift_store_key" not in conf and "swift_store_user" not in conf


def test_glance_use_swift_puts_glance_after_swift(tmp_path):
    from minstack.pipeline import select, waves
    settings, _ = phase_context(tmp_path, "enable_service swift\nGLANCE_USE_SWIFT=True\n")
    order = [p.name for wave in waves(select(PHASE_LIST, settings), settings) for p in wave]
    assert order.index("swift") < order.index("glance") < order.index("image") < order.index("nova")
    plain, _ = phase_context(tmp_path, "enable_service swift\n")
    assert "swift" in BY_NAME["glance"].requirements(settings)
    assert "swift" not in BY_NAME["glance"].requirements(plain)
    assert "swift" not in BY_NAME["glance"].requires  # the static requirements stay as they were


def test_glance_removes_the_swift_store_file_once_glance_use_swift_is_off(tmp_path):
    glance = BY_NAME["glance"]
    settings, make = phase_context(tmp_path, f"GLANCE_API_CONF={tmp_path}/etc/glance-api.conf\n")
    ctx = make(glance)
    removed = []
    ctx.remove_files = lambda *paths: removed.extend(paths)
    [step] = glance.after_config(ctx)
    stale = tmp_path / "etc" / "glance-swift-store.conf"
    assert step.check() is True  # nothing there: nothing to do
    stale.parent.mkdir()
    stale.write_text("[ref1]\n")
    assert step.check() is False
    step.action()
    assert removed == [stale]
    on, make_on = phase_context(tmp_path, "enable_service swift\nGLANCE_USE_SWIFT=True\n")
    assert glance.after_config(make_on(glance)) == []


def test_heat_api_serves_two_requests_at_once_with_one_worker(tmp_path):
    """OS::Heat::Stack: heat-engine calls heat-api back while heat-api waits for the engine; one
    single-threaded uWSGI process (API_WORKERS=1) timed out after 60 s (heat-tempest-plugin's
    RemoteStackTest)."""
    settings, make = phase_context(tmp_path, "API_WORKERS=1\nenable_service heat\n")
    heat = BY_NAME["heat"]
    ini = heat.uwsgi_config(make(heat), catalogue.api("heat-api")).content.decode()
    assert "\nprocesses = 1\n" in ini and "\nthreads = 2\n" in ini
    nova = BY_NAME["nova"]
    assert "\nthreads = 1\n" in nova.uwsgi_config(make(nova), catalogue.api("nova-api")).content.decode()
