"""minstack.settings (with services and hostinfo): typed, validated settings.

Every host here is fake: HostFacts built from canned `ip -j` JSON.
"""
import json
import os
import re
import stat
import textwrap
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from minstack import services
from minstack.errors import ConfigError, MinstackError
from minstack.hostinfo import HostFacts, Route, minstack_owned_device, parse_addresses, parse_routes
from minstack.localrc import ServiceOp
from minstack.settings import CONVERTERS, DEFAULT_IMAGE_URL, KEYS, load_settings, save_generated_secrets

REPO = Path(__file__).resolve().parents[2]


# ---- a fake host ---------------------------------------------------------------------------
def ip_json(routes, addresses):
    """`ip -j -4 route show` / `ip -j -4 addr show` text for routes [(dst, dev)] and
    addresses [(dev, "a.b.c.d/len")]."""
    route_json = json.dumps([{"dst": dst, "dev": dev, "flags": []} for dst, dev in routes])
    links = {}
    for dev, cidr in addresses:
        local, prefixlen = cidr.split("/")
        links.setdefault(dev, []).append({"family": "inet", "local": local, "prefixlen": int(prefixlen)})
    addr_json = json.dumps([{"ifname": dev, "addr_info": info} for dev, info in links.items()])
    return route_json, addr_json


def fake_host(routes=(), addresses=()):
    base_routes = [("default", "eth0"), ("192.168.1.0/24", "eth0"), ("203.0.113.0/24", "eth1"),
                   ("172.24.4.0/24", "br-ex")]  # br-ex: minstack's own route from an earlier run
    base_addresses = [("lo", "127.0.0.1/8"), ("eth0", "192.168.1.10/24"), ("eth1", "203.0.113.5/24"),
                      ("br-ex", "172.24.4.1/24")]
    return HostFacts.from_ip_json(*ip_json(base_routes + list(routes), base_addresses + list(addresses)),
                                  "sandbox")


HOST = fake_host()


def write(tmp_path, text, name="localrc"):
    text = textwrap.dedent(text)
    path = tmp_path / name
    path.write_text(text[1:] if text.startswith("\n") else text)
    return path


def load(tmp_path, text="", host=HOST, **kwargs):
    return load_settings(write(tmp_path, text), host, environ={}, **kwargs)


def problems(tmp_path, text, host=HOST, **kwargs):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, host, **kwargs)
    return [str(problem) for problem in caught.value.problems]


# ---- defaults ------------------------------------------------------------------------------
def test_defaults(tmp_path):
    s = load(tmp_path, "# nothing set\n")
    assert s.source == tmp_path / "localrc"
    assert (s.host_ip, s.service_host) == ("192.168.1.10", "192.168.1.10")
    assert (s.dest, s.data_dir, s.logdir) == (Path("/opt/stack"), Path("/opt/stack/data"), Path("/opt/stack/logs"))
    assert s.stack_user == "stack"
    assert s.fixed_range == IPv4Network("10.0.0.0/22")
    assert s.floating_range == IPv4Network("172.24.4.0/24")
    assert s.public_network_gateway == IPv4Address("172.24.4.1")
    assert (s.openstack_release, s.install_method, s.offline) == ("2026.2", "source", False)
    assert s.image_urls == (DEFAULT_IMAGE_URL,) and s.glance_use_swift is False
    assert DEFAULT_IMAGE_URL == ("https://github.com/cirros-dev/cirros/releases/download/0.6.3/"
                                 "cirros-0.6.3-x86_64-disk.img")
    assert (s.libvirt_type, s.api_workers, s.service_timeout) == ("auto", 1, 120)
    assert (s.fail_phase, s.verify_keep_instance) == (None, True)
    assert s.enabled_services == frozenset(services.default_services())
    # DevStack's defaults: Cinder's three services too (c-bak is not among them), on minstack's Ceph
    assert {"key", "mysql", "rabbit", "n-cpu", "q-svc", "c-api", "c-sch", "c-vol"} <= s.enabled_services
    assert "c-bak" not in s.enabled_services
    assert s.config_files["NOVA_CONF"] == Path("/etc/nova/nova.conf")
    assert s.config_files["TEMPEST_CONFIG"] == Path("/opt/stack/tempest/etc/tempest.conf")
    assert s.post_config == () and s.warnings == ()
    assert (s.venv, s.state_dir) == (Path("/opt/stack/data/venv"), Path("/opt/stack/data/minstack"))


def test_no_file_means_all_defaults():
    s = load_settings(None, HOST, environ={})
    assert s.source is None and s.host_ip == "192.168.1.10"


def test_generated_passwords(tmp_path):
    s = load(tmp_path)
    assert s.generated_secrets == {"ADMIN_PASSWORD", "DATABASE_PASSWORD", "RABBIT_PASSWORD", "SERVICE_PASSWORD"}
    assert len(set(s.secret_values())) == 4
    assert all(len(p) >= 20 and re.fullmatch(r"[A-Za-z0-9_-]+", p) for p in s.secret_values())


def test_derived_defaults_follow_what_they_derive_from(tmp_path):
    s = load(tmp_path, """
        DEST=/srv/stack
        HOST_IP=203.0.113.5
        FLOATING_RANGE=172.30.0.0/24
    """)
    assert (s.data_dir, s.logdir, s.venv) == (Path("/srv/stack/data"), Path("/srv/stack/logs"),
                                              Path("/srv/stack/data/venv"))
    assert s.config_files["TEMPEST_CONFIG"] == Path("/srv/stack/tempest/etc/tempest.conf")
    assert s.service_host == "203.0.113.5"
    assert s.public_network_gateway == IPv4Address("172.30.0.1")


def test_values_are_typed(tmp_path):
    s = load(tmp_path, """
        OFFLINE=yes
        VERIFY_KEEP_INSTANCE=0
        LIBVIRT_TYPE=QEMU
        API_WORKERS=4
        SERVICE_TIMEOUT=300
        IMAGE_URLS="file:///var/cache/a.img, https://example.com/b.qcow2,"
        MINSTACK_DEBUG_FAIL_PHASE=keystone
        DATA_DIR=/srv//data/../state/
        NOVA_CONF=/srv/nova.conf
    """)
    assert (s.offline, s.verify_keep_instance, s.libvirt_type) == (True, False, "qemu")
    assert (s.api_workers, s.service_timeout) == (4, 300)
    assert s.image_urls == ("file:///var/cache/a.img", "https://example.com/b.qcow2")
    assert s.fail_phase == "keystone"
    assert s.data_dir == Path("/srv/state")
    assert s.config_files["NOVA_CONF"] == Path("/srv/nova.conf")


@pytest.mark.parametrize("text, expected", [
    ("True", True), ("false", False), ("YES", True), ("no", False), ("1", True), ("0", False)])
def test_booleans(tmp_path, text, expected):
    assert load(tmp_path, f"OFFLINE={text}\n").offline is expected


def test_empty_value_means_default(tmp_path):
    s = load(tmp_path, "HOST_IP=\nFIXED_RANGE=\nMINSTACK_DEBUG_FAIL_PHASE=\n")
    assert (s.host_ip, s.fixed_range, s.fail_phase) == ("192.168.1.10", IPv4Network("10.0.0.0/22"), None)


def test_is_enabled_and_secret_values(tmp_path):
    s = load(tmp_path, "ADMIN_PASSWORD=a\nDATABASE_PASSWORD=b\nRABBIT_PASSWORD=c\nSERVICE_PASSWORD=d\n")
    assert s.is_enabled("c-bak", "key") and not s.is_enabled("c-bak", "tls-proxy")
    assert s.secret_values() == ["a", "b", "c", "d"]
    assert s.generated_secrets == frozenset()


def test_repr_does_not_show_passwords(tmp_path):
    s = load(tmp_path, "ADMIN_PASSWORD=hunter2-very-secret\n")
    assert "hunter2-very-secret" not in repr(s)


def test_settings_are_frozen(tmp_path):
    s = load(tmp_path)
    with pytest.raises(AttributeError):
        s.dest = Path("/tmp")


# ---- passwords: anything representable is accepted verbatim --------------------------------
def test_awkward_passwords_are_accepted_verbatim(tmp_path):
    s = load(tmp_path, r"""
        ADMIN_PASSWORD='it'"'"'s "q" $HOME'
        DATABASE_PASSWORD="pa ss@w/rd:\$x\"y"
        RABBIT_PASSWORD=a\ b\$c%20
        SERVICE_PASSWORD='  spaced ; | & `x` $(y)  '
    """)
    assert s.admin_password == 'it\'s "q" $HOME'
    assert s.database_password == 'pa ss@w/rd:$x"y'
    assert s.rabbit_password == "a b$c%20"
    assert s.service_password == "  spaced ; | & `x` $(y)  "
    assert s.generated_secrets == frozenset()


# ---- malformed and dangerous settings: each names its file:line ----------------------------
# (localrc line 2, the start of its message)
BAD_SETTINGS = [
    ("HOST_IP=10.0.0.300", "HOST_IP=10.0.0.300 is not an IPv4 address"),
    ("HOST_IP=fe80::1", "HOST_IP=fe80::1 is an IPv6 address; minstack supports IPv4 only"),
    ("HOST_IP=10.9.9.9", "HOST_IP=10.9.9.9 is not an address of this host (it has 127.0.0.1, 172.24.4.1, "
                         "192.168.1.10, 203.0.113.5); minstack installs everything here"),
    ("SERVICE_HOST=controller", "SERVICE_HOST=controller is not an IPv4 address"),
    ("SERVICE_HOST=192.168.1.99", "SERVICE_HOST=192.168.1.99 is not an address of this host"),
    ("FIXED_RANGE=10.0.0.1/22", "FIXED_RANGE=10.0.0.1/22 has host bits set; did you mean 10.0.0.0/22?"),
    ("FIXED_RANGE=10.0.0.0", "FIXED_RANGE=10.0.0.0 needs a prefix length, e.g. 10.0.0.0/22"),
    ("FIXED_RANGE=10.0.0.0/255.0", "FIXED_RANGE=10.0.0.0/255.0 is not an IPv4 network in CIDR form"),
    ("FLOATING_RANGE=172.24.4.0/33", "FLOATING_RANGE=172.24.4.0/33 is not an IPv4 network in CIDR form"),
    ("FLOATING_RANGE=172.24.4.0/30", "FLOATING_RANGE=172.24.4.0/30 is too small; use a /29 or larger"),
    ("FIXED_RANGE=172.24.0.0/16", "FIXED_RANGE=172.24.0.0/16 overlaps FLOATING_RANGE (default 172.24.4.0/24); "
                                  "the private and the public network must not share addresses"),
    ("FLOATING_RANGE=203.0.113.0/24", "FLOATING_RANGE=203.0.113.0/24 overlaps 203.0.113.0/24 (route on eth1) "
                                      "already used by this host; pick a free range, "
                                      "e.g. FLOATING_RANGE=172.16.0.0/24"),
    ("FIXED_RANGE=192.168.0.0/16", "FIXED_RANGE=192.168.0.0/16 overlaps 192.168.1.0/24 (route on eth0) already "
                                   "used by this host; pick a free range, e.g. FIXED_RANGE=10.0.0.0/16"),
    ("FIXED_RANGE=127.0.0.0/24", "FIXED_RANGE=127.0.0.0/24 overlaps 127.0.0.0/8 (address on lo)"),
    ("PUBLIC_NETWORK_GATEWAY=172.24.5.1",
     "PUBLIC_NETWORK_GATEWAY=172.24.5.1 is outside FLOATING_RANGE 172.24.4.0/24"),
    ("PUBLIC_NETWORK_GATEWAY=172.24.4.0",
     "PUBLIC_NETWORK_GATEWAY=172.24.4.0 is the network address of FLOATING_RANGE 172.24.4.0/24"),
    ("PUBLIC_NETWORK_GATEWAY=172.24.4.255",
     "PUBLIC_NETWORK_GATEWAY=172.24.4.255 is the broadcast address of FLOATING_RANGE 172.24.4.0/24"),
    ("API_WORKERS=many", "API_WORKERS=many is not a whole number"),
    ("API_WORKERS=0", "API_WORKERS=0 must be between 1 and 64"),
    ("API_WORKERS=65", "API_WORKERS=65 must be between 1 and 64"),
    ("SERVICE_TIMEOUT=-5", "SERVICE_TIMEOUT=-5 must be between 1 and 3600"),
    ("LIBVIRT_TYPE=kvn", "LIBVIRT_TYPE=kvn is not one of auto, kvm, qemu; did you mean 'kvm'?"),
    ("INSTALL_METHOD=packages", "INSTALL_METHOD=packages is not supported yet; use source"),
    ("INSTALL_METHOD=pip", "INSTALL_METHOD=pip is not one of source, packages"),
    ("OPENSTACK_RELEASE=2025.1", "OPENSTACK_RELEASE=2025.1 is not usable: no pinned versions for release "
                                 "2025.1; known: 2026.2"),
    ("OFFLINE=maybe", "OFFLINE=maybe is not True/False, yes/no or 1/0"),
    ("VERIFY_KEEP_INSTANCE=2", "VERIFY_KEEP_INSTANCE=2 is not True/False, yes/no or 1/0"),
    ("GLANCE_USE_SWIFT=maybe", "GLANCE_USE_SWIFT=maybe is not True/False, yes/no or 1/0"),
    ("GLANCE_USE_SWIFT=True", "GLANCE_USE_SWIFT=True stores images in Swift, which is not enabled (s-proxy): "
                              "add enable_service swift, or leave GLANCE_USE_SWIFT off"),
    ("DEST=opt/stack", "DEST=opt/stack must be an absolute path"),
    ("DEST=~/stack", "DEST=~/stack must be an absolute path"),
    ("DEST=/", "DEST=/ is a system directory"),
    ("DEST=/usr/./", "DEST=/usr/./ is a system directory"),
    ("DATA_DIR=/opt/stack/../../etc", "DATA_DIR=/opt/stack/../../etc is a system directory"),
    ("LOGDIR=logs", "LOGDIR=logs must be an absolute path"),
    ("LOGDIR='/opt/my logs'", "LOGDIR='/opt/my logs' must not contain whitespace or control characters"),
    ("NOVA_CONF=nova.conf", "NOVA_CONF=nova.conf must be an absolute path"),
    ("STACK_USER=root", "STACK_USER=root must not be root: the services run as an unprivileged user"),
    ("STACK_USER='stack user'", "STACK_USER='stack user' is not a valid user name"),
    ("ADMIN_PASSWORD=", "ADMIN_PASSWORD is empty; leave it unset to have one generated"),
    ("ADMIN_PASSWORD=''", "ADMIN_PASSWORD is empty; leave it unset to have one generated"),
    ('DATABASE_PASSWORD="two\nlines"', "DATABASE_PASSWORD contains a newline, NUL or other control character"),
    ("IMAGE_URLS=ftp://example.com/x.img", "IMAGE_URLS=ftp://example.com/x.img has an entry "
                                           "'ftp://example.com/x.img' that is not an http://, https:// "
                                           "or file:// URL"),
    ("IMAGE_URLS=cirros.img", "IMAGE_URLS=cirros.img has an entry 'cirros.img' that is not"),
    ("MINSTACK_DEBUG_FAIL_PHASE='two words'", "MINSTACK_DEBUG_FAIL_PHASE='two words' is not a phase name (or PHASE/STEP)"),
    ("enable_service n-cpus", "unknown service 'n-cpus'; did you mean 'n-cpu'?"),
    ("enable_service kye", "unknown service 'kye'; did you mean 'key'?"),
    ("ENABLED_SERVICES+=,rabit", "unknown service 'rabit'; did you mean 'rabbit'?"),
    ("enable_service tls-proxy", "service 'tls-proxy' is not supported by this minstack yet"),
    ("ENABLED_SERVICES=key,mysql,rabbit,tls-proxy", "service 'tls-proxy' is not supported by this minstack yet"),
    ("disable_service mysql", "service 'key' needs 'mysql', which is not enabled (enable_service mysql)"),
    ("ENABLED_SERVICES=key,rabbit", "service 'key' needs 'mysql', which is not enabled"),
]


@pytest.mark.parametrize("line, message", BAD_SETTINGS, ids=[case[0] for case in BAD_SETTINGS])
def test_bad_setting_is_reported_at_its_line(tmp_path, line, message):
    found = problems(tmp_path, f"# minstack localrc\n{line}\n# the end\n")
    assert len(found) == 1, found
    assert found[0].startswith(f"{tmp_path / 'localrc'}:2: {message}"), found[0]


def test_bad_values_are_not_echoed_for_passwords(tmp_path):
    found = problems(tmp_path, 'SERVICE_PASSWORD="very\nsecret"\n')
    assert len(found) == 1 and "secret" not in found[0].replace("SERVICE_PASSWORD", "")


def test_every_problem_is_reported_at_once(tmp_path):
    found = problems(tmp_path, """
        HOST_IP=10.0.0.300
        FIXED_RANGE=10.0.0.1/22
        API_WORKERS=0
        enable_service tls-proxy
        DEST=relative
    """)
    assert [line.split(": ")[0] for line in found] == [f"{tmp_path / 'localrc'}:{n}" for n in (1, 2, 3, 4, 5)]


def test_later_line_gets_the_overlap_problem(tmp_path):
    found = problems(tmp_path, "FLOATING_RANGE=10.0.0.0/24\n# x\nFIXED_RANGE=10.0.0.0/16\n")
    assert found == [f"{tmp_path / 'localrc'}:3: FIXED_RANGE=10.0.0.0/16 overlaps FLOATING_RANGE=10.0.0.0/24; "
                     "the private and the public network must not share addresses"]


def test_a_problem_with_a_default_names_the_default():
    host = fake_host(routes=[("10.0.1.0/24", "eth2")], addresses=[("eth2", "10.0.1.7/24")])
    with pytest.raises(ConfigError) as caught:
        load_settings(None, host, environ={})
    assert [str(p) for p in caught.value.problems] == [
        "localrc: FIXED_RANGE (default 10.0.0.0/22) overlaps 10.0.1.0/24 (route on eth2) already used by this "
        "host; pick a free range, e.g. FIXED_RANGE=10.0.4.0/22"]


def test_the_203_0_113_route_blocks_a_floating_range_inside_it(tmp_path):
    found = problems(tmp_path, "FLOATING_RANGE=203.0.113.128/25\n")
    assert found == [f"{tmp_path / 'localrc'}:1: FLOATING_RANGE=203.0.113.128/25 overlaps 203.0.113.0/24 "
                     "(route on eth1) already used by this host; pick a free range, "
                     "e.g. FLOATING_RANGE=172.16.0.0/25"]


def test_minstack_owned_devices_do_not_count_as_overlaps(tmp_path):
    # HOST has 172.24.4.0/24 on br-ex (minstack's own): the default FLOATING_RANGE is fine...
    assert load(tmp_path).floating_range == IPv4Network("172.24.4.0/24")
    # ...but the same network on a device of the user's is not.
    host = fake_host(routes=[("172.24.4.0/24", "eth2")])
    found = problems(tmp_path, "", host=host)
    assert found == [f"{tmp_path / 'localrc'}: FLOATING_RANGE (default 172.24.4.0/24) overlaps 172.24.4.0/24 "
                     "(route on eth2) already used by this host; pick a free range, "
                     "e.g. FLOATING_RANGE=172.16.0.0/24"]


def test_no_default_route_and_no_host_ip():
    host = HostFacts.from_ip_json(*ip_json([("192.168.1.0/24", "eth0")], [("eth0", "192.168.1.10/24")]))
    with pytest.raises(ConfigError) as caught:
        load_settings(None, host, environ={})
    assert [str(p) for p in caught.value.problems] == [
        "localrc: HOST_IP is not set and this host has no default route to find it from; "
        "set HOST_IP to this host's IPv4 address"]


def test_host_ip_can_be_set_without_a_default_route(tmp_path):
    host = HostFacts.from_ip_json(*ip_json([("192.168.1.0/24", "eth0")], [("eth0", "192.168.1.10/24")]))
    assert load(tmp_path, "HOST_IP=192.168.1.10\n", host=host).host_ip == "192.168.1.10"


def test_fail_phase_may_come_from_the_environment(tmp_path):
    path = write(tmp_path, "# nothing\n")
    assert load_settings(path, HOST, environ={"MINSTACK_DEBUG_FAIL_PHASE": "keystone"}).fail_phase == "keystone"
    write(tmp_path, "MINSTACK_DEBUG_FAIL_PHASE=mysql\n")
    assert load_settings(path, HOST, environ={"MINSTACK_DEBUG_FAIL_PHASE": "keystone"}).fail_phase == "mysql"
    # Other settings do not come from the environment.
    assert load_settings(path, HOST, environ={"HOST_IP": "203.0.113.5"}).host_ip == "192.168.1.10"
    with pytest.raises(ConfigError) as caught:
        load_settings(None, HOST, environ={"MINSTACK_DEBUG_FAIL_PHASE": "two words"})
    assert str(caught.value) == ("localrc: MINSTACK_DEBUG_FAIL_PHASE='two words' (from the environment) "
                                 "is not a phase name (or PHASE/STEP)")


# ---- warnings ------------------------------------------------------------------------------
def warnings_of(tmp_path, text):
    return [str(w) for w in load(tmp_path, text).warnings]


def test_unknown_setting_is_a_warning_with_a_suggestion(tmp_path):
    assert warnings_of(tmp_path, "# x\nLOGDIRR=/var/log/stack\nUSE_SCREEN=False\n") == [
        f"{tmp_path / 'localrc'}:2: unknown setting LOGDIRR (ignored); did you mean 'LOGDIR'?",
        f"{tmp_path / 'localrc'}:3: unknown setting USE_SCREEN (ignored)"]


def test_never_supported_service_is_a_warning_and_ignored(tmp_path):
    s = load(tmp_path, "enable_service dstat\n\nenable_service q-agt\n")
    assert not s.is_enabled("dstat", "q-agt")
    assert [str(w) for w in s.warnings] == [
        f"{tmp_path / 'localrc'}:1: service 'dstat' is not supported by minstack (DevStack tooling); ignored",
        f"{tmp_path / 'localrc'}:3: service 'q-agt' is not supported by minstack "
        "(minstack uses OVN, not the ML2/OVS agents); ignored"]


def test_loopback_host_ip_is_a_warning(tmp_path):
    assert warnings_of(tmp_path, "HOST_IP=127.0.0.1\n") == [
        f"{tmp_path / 'localrc'}:1: HOST_IP=127.0.0.1 is a loopback address; instances will not reach the APIs"]


def test_dollar_setting_means_its_default_until_set(tmp_path):
    s = load(tmp_path, """
        LOGDIR=$DEST/log
        IMAGE_URLS+=",file:///srv/extra.img"
    """)
    assert s.logdir == Path("/opt/stack/log") and s.warnings == ()
    assert s.image_urls == (DEFAULT_IMAGE_URL, "file:///srv/extra.img")


def test_localrc_warnings_are_passed_on(tmp_path):
    assert warnings_of(tmp_path, "ADMIN_PASSWORD=pa$word\n") == [
        f"{tmp_path / 'localrc'}:1: $word is not set, so it expands to nothing "
        "(write '...' in single quotes for a literal $)"]


# ---- services ------------------------------------------------------------------------------
def test_service_changes_apply_in_order(tmp_path):
    s = load(tmp_path, """
        disable_all_services
        enable_service mysql key
        disable_service key
        enable_service key
        ENABLED_SERVICES+=,placement-client
    """)
    assert s.enabled_services == {"mysql", "key", "placement-client"}


def test_devstack_default_services_do_not_explode(tmp_path):
    """A typical DevStack local.conf: everything it names is known; it only
    fails on what this minstack does not support yet."""
    found = problems(tmp_path, """
        enable_service tls-proxy
        disable_service c-api c-sch etcd3 dstat tempest
        disable_service q-ovn-metadata-agent
        enable_service q-ovn-metadata-agent
    """)
    assert found and all("is not supported by this minstack yet" in line for line in found)
    assert f"{tmp_path / 'localrc'}:1: service 'tls-proxy' is not supported by this minstack yet" in found


def test_resolve_services_unit():
    op = ServiceOp
    enabled, found, warnings = services.resolve_services([
        op("disable", ("key",), "f", 1),
        op("enable", ("n-cpu", "nova-cpu"), "f", 2),
        op("set", ("mysql", "q-ovn-metadata-agent"), "f", 3),
        op("enable", ("rabbit",), "f", 4),
    ], ("key", "rabbit"))
    assert enabled == {"mysql", "q-ovn-agent", "rabbit"}
    assert [str(p) for p in found] == ["f:2: unknown service 'nova-cpu'; did you mean 'n-cpu'?"]
    assert warnings == []


def test_meta_names_stand_for_all_of_their_services():
    op = ServiceOp
    enabled, errors, warnings = services.resolve_services([
        op("disable", ("cinder", "swift", "nova"), "f", 1),
        op("enable", ("glance",), "f", 2),
    ], services.DEFAULT_ENABLED_SERVICES)
    assert not errors and not warnings
    assert not enabled & {"c-api", "c-sch", "c-vol", "n-api", "n-cpu", "n-cond"}
    assert "g-api" in enabled and "key" in enabled


def test_disabling_a_name_minstack_does_not_know_is_a_warning_enabling_it_an_error():
    op = ServiceOp
    _, errors, warnings = services.resolve_services([
        op("disable", ("ceilometer-acompute",), "f", 1),
        op("enable", ("ceilometer-acompute",), "f", 2),
    ], ())
    assert [str(p) for p in warnings] == ["f:1: service 'ceilometer-acompute' is not one minstack knows; "
                                          "nothing to disable"]
    assert [p.line for p in errors] == [2]


def test_glance_uses_swift_only_where_swift_runs(tmp_path):
    s = load(tmp_path, "enable_service swift\nGLANCE_USE_SWIFT=yes\n")
    assert s.glance_use_swift is True and s.is_enabled("s-proxy")
    assert load(tmp_path, "GLANCE_USE_SWIFT=False\n").glance_use_swift is False
    # Swift enabled, then its proxy taken away again: reported where GLANCE_USE_SWIFT asks for it
    found = problems(tmp_path, "enable_service swift\nGLANCE_USE_SWIFT=True\ndisable_service s-proxy\n")
    assert found == [f"{tmp_path / 'localrc'}:2: GLANCE_USE_SWIFT=True stores images in Swift, which is not "
                     "enabled (s-proxy): add enable_service swift, or leave GLANCE_USE_SWIFT off"]


def test_a_devstack_local_conf_disabling_swift_and_cinder_is_accepted(tmp_path):
    s = load(tmp_path, """
        disable_service swift
        disable_service cinder
        disable_service c-bak tls-proxy
    """)
    assert not s.is_enabled("c-api", "c-vol", "s-proxy")


def test_catalogue_is_consistent():
    known = set(services.known_services())
    assert services.supported_services() <= known
    assert set(services.not_planned()) <= known
    assert not services.supported_services() & set(services.not_planned())
    assert set(services.DEFAULT_ENABLED_SERVICES) <= known
    assert set(services.SERVICE_ALIASES.values()) <= known
    assert {"key", "mysql", "rabbit"} <= services.supported_services()
    for name in ("ovn-controller", "ovn-northd", "ovs-vswitchd", "ovsdb-server", "q-svc", "q-ovn-agent"):
        assert name in services.DEFAULT_ENABLED_SERVICES
    assert services.default_services() == tuple(
        n for n in services.DEFAULT_ENABLED_SERVICES if n in services.supported_services())


# ---- local.conf post-config ----------------------------------------------------------------
def test_post_config_targets_are_resolved(tmp_path):
    path = write(tmp_path, """
        [[local|localrc]]
        NEUTRON_CONF=/srv/neutron.conf
        [[post-config|$NOVA_CONF]]
        [DEFAULT]
        my_ip = $HOST_IP
        state_path = $state_path/x
        [[post-config|${NEUTRON_CONF}]]
        [DEFAULT]
        a = 1
        [[post-config|/$Q_PLUGIN_CONF_FILE]]
        [ml2]
        b = 2
        [[post-config|/etc/custom/custom.conf]]
        [x]
        c = 3
        [[test-config|$TEMPEST_CONFIG]]
        [compute]
        d = 4
    """, name="local.conf")
    s = load_settings(path, HOST, environ={})
    assert [(p.phase, p.target, p.section, p.key, p.value, p.line) for p in s.post_config] == [
        ("post-config", "/etc/nova/nova.conf", "DEFAULT", "my_ip", "192.168.1.10", 5),
        ("post-config", "/etc/nova/nova.conf", "DEFAULT", "state_path", "$state_path/x", 6),
        ("post-config", "/srv/neutron.conf", "DEFAULT", "a", "1", 9),
        ("post-config", "/etc/neutron/plugins/ml2/ml2_conf.ini", "ml2", "b", "2", 12),
        ("post-config", "/etc/custom/custom.conf", "x", "c", "3", 15),
        ("test-config", "/opt/stack/tempest/etc/tempest.conf", "compute", "d", "4", 18),
    ]


def test_post_config_bad_targets(tmp_path):
    path = write(tmp_path, """
        [[post-config|$NOVA_CONFG]]
        [DEFAULT]
        a = 1
        b = 2
        [[post-config|nova.conf]]
        [DEFAULT]
        a = 1
    """, name="local.conf")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, HOST, environ={})
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:1: [[post-config|$NOVA_CONFG]]: unknown config file variable $NOVA_CONFG; did you mean "
        "'NOVA_CONF'?; known: $KEYSTONE_CONF, $GLANCE_API_CONF, $PLACEMENT_CONF, $NOVA_CONF, $NOVA_CPU_CONF, "
        "$NEUTRON_CONF, $Q_ML2_CONF_FILE, $CINDER_CONF, $SWIFT_CONFIG_PROXY_SERVER, "
        "$HEAT_CONF, $TEMPEST_CONFIG",
        f"{path}:5: [[post-config|nova.conf]]: the target must be a config file variable such as $NOVA_CONF, "
        "or an absolute path"]


def test_a_failed_config_file_setting_is_reported_once(tmp_path):
    path = write(tmp_path, """
        [[local|localrc]]
        DEST=relative
        [[test-config|$TEMPEST_CONFIG]]
        [compute]
        a = 1
    """, name="local.conf")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, HOST, environ={})
    assert [str(p) for p in caught.value.problems] == [f"{path}:2: DEST=relative must be an absolute path"]


def test_other_phases_are_warned_about_and_ignored(tmp_path):
    path = write(tmp_path, """
        [[post-install|$NOVA_CONF]]
        [DEFAULT]
        a = 1
        b = 2
        [[extra|$NOVA_CONF]]
        [DEFAULT]
        a = 1
    """, name="local.conf")
    s = load_settings(path, HOST, environ={})
    assert s.post_config == ()
    assert [str(w) for w in s.warnings] == [
        f"{path}:1: [[post-install|$NOVA_CONF]]: minstack applies only post-config and test-config sections; "
        "ignored",
        f"{path}:5: [[extra|$NOVA_CONF]]: minstack applies only post-config and test-config sections; ignored"]


# ---- the secrets file ----------------------------------------------------------------------
def test_secrets_round_trip(tmp_path):
    secrets_file = tmp_path / "state" / "passwords"
    first = load(tmp_path, "ADMIN_PASSWORD='mine'\n", secrets_file=secrets_file)
    assert first.generated_secrets == {"DATABASE_PASSWORD", "RABBIT_PASSWORD", "SERVICE_PASSWORD"}
    save_generated_secrets(first, secrets_file)
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    text = secrets_file.read_text()
    assert "ADMIN_PASSWORD" not in text and f"DATABASE_PASSWORD={first.database_password}\n" in text

    second = load(tmp_path, "ADMIN_PASSWORD='mine'\n", secrets_file=secrets_file)
    assert second.generated_secrets == frozenset()
    assert second.secret_values() == first.secret_values()
    save_generated_secrets(second, secrets_file)  # nothing generated: nothing written
    assert secrets_file.read_text() == text


def test_secrets_file_gains_newly_generated_passwords(tmp_path):
    secrets_file = tmp_path / "passwords"
    first = load(tmp_path, "ADMIN_PASSWORD=a\nDATABASE_PASSWORD=b\nRABBIT_PASSWORD=c\n", secrets_file=secrets_file)
    save_generated_secrets(first, secrets_file)
    second = load(tmp_path, "ADMIN_PASSWORD=a\n", secrets_file=secrets_file)
    assert second.generated_secrets == {"DATABASE_PASSWORD", "RABBIT_PASSWORD"}
    save_generated_secrets(second, secrets_file)
    third = load(tmp_path, "ADMIN_PASSWORD=a\n", secrets_file=secrets_file)
    assert third.generated_secrets == frozenset()
    assert third.secret_values() == ["a", second.database_password, second.rabbit_password, first.service_password]


def test_nothing_generated_writes_no_file(tmp_path):
    secrets_file = tmp_path / "passwords"
    s = load(tmp_path, "ADMIN_PASSWORD=a\nDATABASE_PASSWORD=b\nRABBIT_PASSWORD=c\nSERVICE_PASSWORD=d\n",
             secrets_file=secrets_file)
    save_generated_secrets(s, secrets_file)
    assert not secrets_file.exists()


def test_loose_secrets_file_is_a_warning_and_saving_tightens_it(tmp_path):
    secrets_file = tmp_path / "passwords"
    secrets_file.write_text("ADMIN_PASSWORD=kept\n")
    os.chmod(secrets_file, 0o644)
    s = load(tmp_path, secrets_file=secrets_file)
    assert s.admin_password == "kept"
    assert [str(w) for w in s.warnings] == [
        f"{secrets_file}: is readable by other users; run: chmod 600 {secrets_file}"]
    save_generated_secrets(s, secrets_file)
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert secrets_file.read_text().startswith("ADMIN_PASSWORD=kept\n")


def test_broken_secrets_file_names_its_line(tmp_path):
    secrets_file = tmp_path / "passwords"
    secrets_file.write_text("# generated\nADMIN_PASSWORD=\ngarbage\n")
    os.chmod(secrets_file, 0o600)
    found = problems(tmp_path, "", secrets_file=secrets_file)
    assert found == [f"{secrets_file}:2: ADMIN_PASSWORD is empty; leave it unset to have one generated",
                     f"{secrets_file}:3: expected KEY=value"]


# ---- volumes: CINDER_ENABLED_BACKENDS, CEPH_LOOPBACK_DISK_SIZE ---------------------------------
GIB = 2 ** 30


def with_disk(free_gib: float, allocated_gib: float = 0, host=HOST):
    """HOST with a DATA_DIR filesystem of free_gib free (and an OSD block file holding allocated_gib)."""
    import dataclasses
    seen = []

    def free_space(path):
        seen.append(path)
        return int(free_gib * GIB)
    return dataclasses.replace(host, free_space=free_space,
                               allocated=lambda path: int(allocated_gib * GIB) if path.name == "ceph-0.block" else 0)


def test_volume_defaults(tmp_path):
    s = load(tmp_path)
    assert s.cinder_enabled_backends == ("ceph",)
    assert s.ceph_loopback_disk_size == 10 * GIB


@pytest.mark.parametrize("text, size", [("10G", 10 * GIB), ("10240M", 10 * GIB), ("3GiB", 3 * GIB),
                                        ("2g", 2 * GIB), ("1T", 2 ** 40), ("4194304K", 4 * GIB),
                                        (str(5 * GIB), 5 * GIB)])
def test_ceph_disk_sizes(tmp_path, text, size):
    assert load(tmp_path, f"CEPH_LOOPBACK_DISK_SIZE={text}\n").ceph_loopback_disk_size == size


@pytest.mark.parametrize("text, names", [("ceph:ceph", ("ceph",)), ("ceph", ("ceph",)),
                                         ("\"ceph:rbd-1, ceph:rbd-2,\"", ("rbd-1", "rbd-2"))])
def test_cinder_backends(tmp_path, text, names):
    assert load(tmp_path, f"CINDER_ENABLED_BACKENDS={text}\n").cinder_enabled_backends == names


@pytest.mark.parametrize("line, message", [
    ("CEPH_LOOPBACK_DISK_SIZE=10Q", "CEPH_LOOPBACK_DISK_SIZE=10Q is not a size such as 10G (K, M, G, T: powers of 1024)"),
    ("CEPH_LOOPBACK_DISK_SIZE=1G", "CEPH_LOOPBACK_DISK_SIZE=1G is too small: at least 2G"),
    ("CINDER_ENABLED_BACKENDS=lvm:lvmdriver-1",
     "CINDER_ENABLED_BACKENDS=lvm:lvmdriver-1 has an entry 'lvm:lvmdriver-1': lvm needs device-mapper and an "
     "iSCSI target in the kernel, which minstack does not provide; minstack supports ceph:<name> (RBD on its "
     "one-node Ceph), e.g. CINDER_ENABLED_BACKENDS=ceph:ceph"),
    ("CINDER_ENABLED_BACKENDS=ceph:ceph,nfs:nfs",
     "CINDER_ENABLED_BACKENDS=ceph:ceph,nfs:nfs has an entry 'nfs:nfs': nfs needs the kernel's NFS client and an "
     "NFS server, which minstack does not provide; minstack supports ceph:<name> (RBD on its one-node Ceph), "
     "e.g. CINDER_ENABLED_BACKENDS=ceph:ceph"),
    ("CINDER_ENABLED_BACKENDS=rados:x",
     "CINDER_ENABLED_BACKENDS=rados:x has an entry 'rados:x': 'rados' is not a backend type minstack knows; "
     "minstack supports ceph:<name> (RBD on its one-node Ceph), e.g. CINDER_ENABLED_BACKENDS=ceph:ceph"),
    ("CINDER_ENABLED_BACKENDS=ceph:a,ceph:a", "CINDER_ENABLED_BACKENDS=ceph:a,ceph:a names the backend a twice"),
    ("CINDER_ENABLED_BACKENDS=ceph:a/b",
     "CINDER_ENABLED_BACKENDS=ceph:a/b has an entry 'ceph:a/b' whose name is not a word of letters, digits, ., _ "
     "or -"),
    ("CINDER_ENABLED_BACKENDS=,", "CINDER_ENABLED_BACKENDS=, lists no backend; e.g. CINDER_ENABLED_BACKENDS=ceph:ceph"),
])
def test_bad_volume_settings_name_file_and_line(tmp_path, line, message):
    assert problems(tmp_path, f"# volumes\n{line}\n") == [f"{tmp_path / 'localrc'}:2: {message}"]


def test_the_block_file_must_fit_in_data_dirs_free_space(tmp_path):
    localrc = tmp_path / "localrc"
    found = problems(tmp_path, "DATA_DIR=/srv/stack\nCEPH_LOOPBACK_DISK_SIZE=50G\n", host=with_disk(12.5))
    assert found == [f"{localrc}:2: CEPH_LOOPBACK_DISK_SIZE=50G does not fit: the filesystem holding DATA_DIR "
                     "(/srv/stack) has 12.5 GiB free, and the Ceph OSD's sparse file grows up to that size as "
                     "volumes are written; set CEPH_LOOPBACK_DISK_SIZE=12G or less, free some space, move DATA_DIR, "
                     "or disable c-vol and c-bak"]
    # the default, when it does not fit, is named as the default (no line)
    found = problems(tmp_path, "# nothing\n", host=with_disk(1))
    assert found == [f"{localrc}: CEPH_LOOPBACK_DISK_SIZE (default 10G) does not fit: the filesystem holding "
                     "DATA_DIR (/opt/stack/data) has 1.0 GiB free, and the Ceph OSD's sparse file grows up to that "
                     "size as volumes are written; free some space, move DATA_DIR, or disable c-vol and c-bak"]


def test_the_block_file_fits_with_what_it_already_holds_or_without_ceph(tmp_path):
    assert load(tmp_path, "CEPH_LOOPBACK_DISK_SIZE=10G\n", host=with_disk(10)).ceph_loopback_disk_size == 10 * GIB
    # a re-run: the existing sparse file's 4 GiB count as room
    assert load(tmp_path, "CEPH_LOOPBACK_DISK_SIZE=12G\n", host=with_disk(8, allocated_gib=4))
    # no Ceph without c-vol and c-bak: nothing to check
    assert load(tmp_path, "disable_service c-vol\nCEPH_LOOPBACK_DISK_SIZE=50G\n", host=with_disk(1))
    # an unknown free space (a fake host, or statvfs failed) is not an error
    assert load(tmp_path, "CEPH_LOOPBACK_DISK_SIZE=5T\n").ceph_loopback_disk_size == 5 * 2 ** 40


def test_free_space_is_read_where_data_dir_will_be(tmp_path):
    from minstack.hostinfo import allocated, free_space
    assert free_space(tmp_path / "not" / "made" / "yet") == free_space(tmp_path) > 0
    assert allocated(tmp_path / "nothing") == 0
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as f:
        f.truncate(GIB)
    assert allocated(sparse) < GIB


def test_the_disk_is_probed_only_when_asked(monkeypatch):
    # ./stack.py and plan ask (they are about to fill it); ./unstack.py --clean must work on a full disk
    from minstack import cli, hostinfo
    monkeypatch.setattr(hostinfo, "_ip_json", lambda what: "[]")
    monkeypatch.setattr(hostinfo, "remote_dependencies", lambda: ())
    assert hostinfo.HostFacts.probe().free_space(Path("/")) is None
    assert hostinfo.HostFacts.probe(disk=True).free_space(Path("/")) > 0
    asked = []
    monkeypatch.setattr(cli, "load_or_report", lambda *a, **kw: asked.append(kw.get("check_disk")))
    for command in (["plan"], ["status"], ["verify"]):
        cli.stack_main(command)
    assert asked == [True, False, False]


# ---- localrc.example and the KEYS table can't drift ----------------------------------------
def example_lines():
    text = (REPO / "localrc.example").read_text()
    return dict(re.findall(r"^#([A-Z][A-Z0-9_]*)=(.*)$", text, flags=re.MULTILINE))


def test_every_key_is_in_localrc_example_with_its_default():
    documented = example_lines()
    for spec in KEYS.values():
        assert spec.name in documented, f"{spec.name} is missing from localrc.example"
        if spec.default is not None:
            assert documented[spec.name] == spec.default, spec.name


def test_localrc_example_documents_only_known_keys():
    assert set(example_lines()) <= set(KEYS)


def test_localrc_example_loads_as_is(tmp_path):
    s = load_settings(REPO / "localrc.example", HOST, environ={})
    assert s.warnings == ()
    assert s.enabled_services == frozenset(services.default_services())


def test_keys_table_is_sound():
    for spec in KEYS.values():
        assert spec.doc and spec.group in ("network", "passwords", "paths", "services", "images",
                                           "performance", "volumes", "debug", "git")
        assert spec.kind == "services" or spec.kind in CONVERTERS


# ---- hostinfo ------------------------------------------------------------------------------
ROUTE_JSON = json.dumps([
    {"dst": "default", "gateway": "192.168.1.1", "dev": "wlan0", "metric": 600},
    {"dst": "default", "gateway": "10.1.0.1", "dev": "eth0", "metric": 100},
    {"dst": "10.1.0.0/16", "dev": "eth0", "prefsrc": "10.1.2.3"},
    {"dst": "10.9.9.9", "dev": "eth0"},
    {"type": "blackhole", "dst": "198.51.100.0/24", "flags": []},
    {"dst": "100.64.0.0/10", "nexthops": [{"gateway": "10.1.0.5", "dev": "eth1"}]},
    {"dst": "172.24.4.0/24", "dev": "br-ex"},
])
ADDR_JSON = json.dumps([
    {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
    {"ifname": "eth0", "addr_info": [{}, {"family": "inet", "local": "10.1.2.3", "prefixlen": 16},
                                     {"family": "inet", "local": "10.1.2.4", "prefixlen": 16}]},
    {"ifname": "eth1", "addr_info": []},
    {"ifname": "br-ex", "addr_info": [{"family": "inet", "local": "172.24.4.1", "prefixlen": 24}]},
])


def test_hostinfo_parses_ip_json():
    host = HostFacts.from_ip_json(ROUTE_JSON, ADDR_JSON, "box")
    assert (host.default_dev, host.default_ip, host.hostname) == ("eth0", "10.1.2.3", "box")
    assert host.routes == (
        Route(IPv4Network("0.0.0.0/0"), "wlan0"), Route(IPv4Network("0.0.0.0/0"), "eth0"),
        Route(IPv4Network("10.1.0.0/16"), "eth0"), Route(IPv4Network("10.9.9.9/32"), "eth0"),
        Route(IPv4Network("198.51.100.0/24"), ""), Route(IPv4Network("100.64.0.0/10"), "eth1"),
        Route(IPv4Network("172.24.4.0/24"), "br-ex"))
    assert host.addresses == ((IPv4Interface("127.0.0.1/8"), "lo"), (IPv4Interface("10.1.2.3/16"), "eth0"),
                              (IPv4Interface("10.1.2.4/16"), "eth0"), (IPv4Interface("172.24.4.1/24"), "br-ex"))


def test_networks_in_use_skip_default_route_and_minstack_devices():
    host = HostFacts.from_ip_json(ROUTE_JSON, ADDR_JSON)
    assert host.networks_in_use() == [
        (IPv4Network("10.1.0.0/16"), "eth0", "route"), (IPv4Network("10.9.9.9/32"), "eth0", "route"),
        (IPv4Network("198.51.100.0/24"), "", "route"), (IPv4Network("100.64.0.0/10"), "eth1", "route"),
        (IPv4Network("127.0.0.0/8"), "lo", "address")]


def test_hostinfo_without_routes():
    host = HostFacts.from_ip_json("", "[]")
    assert (host.default_dev, host.default_ip, host.routes, host.addresses) == (None, None, (), ())
    assert parse_routes("[]") == () and parse_addresses("") == ()


def test_hostinfo_rejects_garbage():
    with pytest.raises(MinstackError):
        parse_routes("ip: command failed")


@pytest.mark.parametrize("name, owned", [
    ("br-ex", True), ("br-int", True), ("ovs-system", True), ("ovn-abc123-0", True), ("tap1234", True),
    ("genev_sys_6081", True), ("mst-veth0", True), ("eth0", False), ("br0", False), ("docker0", False)])
def test_minstack_owned_devices(name, owned):
    assert minstack_owned_device(name) is owned


# ---- addresses the host depends on through its default route --------------------------------
def test_a_range_over_a_package_mirror_is_refused(tmp_path):
    import dataclasses
    host = dataclasses.replace(HOST, depends_on=((IPv4Address("198.51.100.80"),
                                                 "deb.debian.org, a package mirror in the apt sources"),))
    found = problems(tmp_path, "FLOATING_RANGE=198.51.100.0/24\n", host=host)
    assert found == [f"{tmp_path / 'localrc'}:1: FLOATING_RANGE=198.51.100.0/24 overlaps 198.51.100.80 "
                     "(deb.debian.org, a package mirror in the apt sources: the host would lose it) already "
                     "used by this host; pick a free range, e.g. FLOATING_RANGE=172.16.0.0/24"]
    assert load(tmp_path, "FLOATING_RANGE=198.51.101.0/24\n", host).floating_range == IPv4Network("198.51.101.0/24")


def test_nameservers_and_apt_hosts_parsing():
    from minstack.hostinfo import apt_hosts, nameservers
    assert nameservers("# c\nnameserver 10.255.255.53\nnameserver ::1\nnameserver 127.0.0.53\nsearch x\n") == \
        [IPv4Address("10.255.255.53")]
    one_line = "deb http://deb.debian.org/debian bookworm main\ndeb [arch=amd64] https://m.example/x y z\n" \
               "# deb http://commented.example/ x\ndeb file:/local ./\n"
    deb822 = "Types: deb\nURIs: http://deb.debian.org/debian http://security.debian.org/debian-security\n"
    assert apt_hosts([one_line, deb822]) == ["deb.debian.org", "m.example", "security.debian.org"]


# ---- *_CONF: honoured, or refused where it cannot be ---------------------------------------------
def test_a_moved_config_file_is_where_the_phases_write_it(tmp_path):
    s = load(tmp_path, "[[local|localrc]]\nNOVA_CONF=/etc/nova/mine.conf\n"
                       "[[post-config|$NOVA_CONF]]\n[DEFAULT]\ndebug = True\n")
    assert s.config_files["NOVA_CONF"] == Path("/etc/nova/mine.conf")
    assert [(e.target, e.key) for e in s.post_config] == [("/etc/nova/mine.conf", "debug")]


def test_a_config_file_whose_name_a_wsgi_module_hard_codes_cannot_be_renamed(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "HOST_IP=192.168.1.10\nGLANCE_API_CONF=/etc/glance/mine.conf\n")
    assert str(caught.value) == (f"{tmp_path / 'localrc'}:2: GLANCE_API_CONF=/etc/glance/mine.conf: glance.wsgi.api "
                                 "reads only a file named glance-api.conf; keep that name (any directory works), "
                                 "e.g. GLANCE_API_CONF=/etc/glance/glance-api.conf")
    assert load(tmp_path, "PLACEMENT_CONF=/srv/placement/placement.conf\n").config_files["PLACEMENT_CONF"] == \
        Path("/srv/placement/placement.conf")
