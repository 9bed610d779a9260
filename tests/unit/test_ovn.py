"""The pure logic of phases/ovn.py, neutron.py and network.py (no root, no OVS, no cloud)."""
from types import SimpleNamespace

import pytest

from minstack import masking
from minstack.pipeline import phase_module


ovn = phase_module("ovn")
neutron = phase_module("neutron")


@pytest.mark.parametrize("loaded, loadable, expected", [
    (True, False, "system"),
    (False, True, "system"),
    (False, False, "netdev"),   # this CI host: no openvswitch module at all
])
def test_datapath_follows_the_kernel_module(loaded, loadable, expected):
    assert ovn.datapath_type(loaded, loadable) == expected


def test_chassis_identity():
    ids = ovn.wanted_external_ids("c0ffee", "node1", "192.0.2.10", "netdev")
    assert ids["system-id"] == "c0ffee" and ids["hostname"] == "node1"
    assert ids["ovn-remote"] == "tcp:127.0.0.1:6642"
    assert ids["ovn-encap-type"] == "geneve" and ids["ovn-encap-ip"] == "192.0.2.10"
    assert ids["ovn-bridge"] == "br-int" and ids["ovn-bridge-datapath-type"] == "netdev"
    assert ids["ovn-bridge-mappings"] == "public:br-ex"


def test_parse_ovsdb_map():
    assert ovn.parse_ovsdb_map(["map", [["hostname", "vm"], ["system-id", "x"]]]) == \
        {"hostname": "vm", "system-id": "x"}
    assert ovn.parse_ovsdb_map(["map", []]) == {}
    with pytest.raises(ValueError):
        ovn.parse_ovsdb_map(["set", []])


def test_only_differing_keys_are_set_and_others_are_kept():
    current = {"hostname": "old", "ovn-remote": "tcp:127.0.0.1:6642", "someone-elses": "x"}
    wanted = {"hostname": "new", "ovn-remote": "tcp:127.0.0.1:6642", "ovn-encap-type": "geneve"}
    assert ovn.map_changes(current, wanted) == {"hostname": "new", "ovn-encap-type": "geneve"}
    assert ovn.map_changes(wanted, wanted) == {}


def test_ovs_set_args_quote_values():
    # a value with ':' or '=' must reach ovs-vsctl as one OVSDB string
    assert ovn.ovs_set_args("external_ids", {"ovn-remote": "tcp:127.0.0.1:6642", "a": "b=c"}) == [
        'external_ids:a="b=c"', 'external_ids:ovn-remote="tcp:127.0.0.1:6642"']


def test_ovn_listeners_are_loopback_only():
    assert ovn.NB.target == "ptcp:6641:127.0.0.1" and ovn.SB.target == "ptcp:6642:127.0.0.1"


def test_metadata_secret_is_stable_secret_and_masked():
    masking.clear()
    try:
        one = neutron.metadata_secret(SimpleNamespace(service_password="pa$$ word"))
        assert one == neutron.metadata_secret(SimpleNamespace(service_password="pa$$ word"))
        assert one != neutron.metadata_secret(SimpleNamespace(service_password="other"))
        assert len(one) == 64 and "pa$$" not in one
        assert masking.mask(f"secret={one}") == "secret=******"
    finally:
        masking.clear()


def test_network_phase_refuses_to_guess_between_duplicates():
    network = phase_module("network")
    assert network.find_one([], "networks") is None
    only = SimpleNamespace(id="a")
    assert network.find_one(iter([only]), "networks") is only
    with pytest.raises(Exception, match="2 networks named private exist"):
        network.find_one([only, SimpleNamespace(id="b")], "networks named private")
