"""The workshop VM: Vagrantfile, files/vagrant/localrc and files/vagrant/provision.sh.

No VM is started (boxes cannot be downloaded here): vagrant itself validates the
Vagrantfile, and a test-only vagrant command loads it the way `vagrant up` does
and prints the resulting configuration, which is compared with what minstack
uses.  vagrant and vagrant-libvirt come from tests/debs (tests/run installs
them); without them these tests fail rather than skip.
"""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from minstack import services
from minstack.bootstrap import VENV
from minstack.hostinfo import HostFacts
from minstack.paths import CACHE
from minstack.settings import load_settings
from minstack.templates import PORTS
from phases.openrc import OPENRC

REPO = Path(__file__).resolve().parents[2]
VAGRANTFILE = REPO / "Vagrantfile"
LOCALRC = REPO / "files" / "vagrant" / "localrc"
PROVISION = REPO / "files" / "vagrant" / "provision.sh"

# A vagrant command that prints the root configuration of the Vagrantfile named by
# MINSTACK_VAGRANTFILE as JSON.  Vagrant loads the Vagrantfile before it dispatches a
# command, so a plugin defined in it is available; the real Vagrantfile is then loaded as is.
DUMP_VAGRANTFILE = r'''
require "json"

class MinstackDumpCommand < Vagrant.plugin("2", :command)
  def execute
    vm = @env.vagrantfile.config.vm
    libvirt = vm.get_provider_config(:libvirt)
    virtualbox = vm.get_provider_config(:virtualbox)
    puts JSON.generate({
      "box" => vm.box,
      "networks" => vm.networks.map { |type, options| options.merge("type" => type.to_s) },
      "synced_folders" => vm.synced_folders,
      "provisioners" => vm.provisioners.map { |p|
        {"name" => p.name.to_s, "type" => p.type.to_s, "path" => p.config.path, "args" => p.config.args,
         "env" => p.config.env, "privileged" => p.config.privileged}
      },
      "libvirt" => {"cpus" => libvirt.cpus, "memory" => libvirt.memory, "nested" => libvirt.nested,
                    "cpu_mode" => libvirt.cpu_mode, "errors" => libvirt._detected_errors},
      # VirtualBox's cpus/memory setters are customizations; reading them is an error
      "virtualbox" => {"customize" => virtualbox.customizations.map { |event, command| command },
                       "errors" => virtualbox._detected_errors},
    })
    0
  end
end

class MinstackDumpPlugin < Vagrant.plugin("2")
  name "minstack-dump"
  command("minstack-dump") { MinstackDumpCommand }
end

load ENV.fetch("MINSTACK_VAGRANTFILE")
'''

OVERRIDES = {"MINSTACK_VM_CPUS": "6", "MINSTACK_VM_MEMORY": "12288",
             "MINSTACK_HORIZON_PORT": "18080", "MINSTACK_NOVNC_PORT": "16080"}


# ---- running vagrant -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vagrant_env(tmp_path_factory):
    """vagrant's environment: its home and dotfile directory in a temporary place (nothing
    written to the repository or ~), no MINSTACK_* variable from the caller's shell."""
    if shutil.which("vagrant") is None:
        pytest.fail("vagrant is not installed: these tests need the Debian packages in tests/debs "
                    "(tests/run installs them)")
    home = tmp_path_factory.mktemp("vagrant")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MINSTACK_", "VAGRANT_"))}
    env.update(VAGRANT_HOME=str(home / "home"), VAGRANT_DOTFILE_PATH=str(home / "dotfile"),
               VAGRANT_CHECKPOINT_DISABLE="1", VAGRANT_NO_COLOR="1")
    return env


def vagrant(env, *args, extra_env=None):
    return subprocess.run(["vagrant", *args], cwd=REPO, env={**env, **(extra_env or {})},
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def dump_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("dump") / "Vagrantfile"
    path.write_text(DUMP_VAGRANTFILE)
    return path


def dump(env, dump_file, extra_env=None):
    """The Vagrantfile's configuration as `vagrant up` would see it, with extra_env set."""
    result = vagrant(env, "minstack-dump",
                     extra_env={"VAGRANT_VAGRANTFILE": str(dump_file), "MINSTACK_VAGRANTFILE": str(VAGRANTFILE),
                                **(extra_env or {})})
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def config(vagrant_env, dump_file):
    return dump(vagrant_env, dump_file)


def forwarded(config):
    return {net["id"]: net for net in config["networks"] if net["type"] == "forwarded_port" and net["id"] != "ssh"}


# ---- vagrant validate --------------------------------------------------------------------------
def test_vagrant_and_its_libvirt_provider_are_installed(vagrant_env):
    result = vagrant(vagrant_env, "plugin", "list")
    assert result.returncode == 0, result.stderr
    assert "vagrant-libvirt" in result.stdout, "vagrant-libvirt (tests/debs) validates the libvirt block"


@pytest.mark.parametrize("extra_env", [{}, OVERRIDES], ids=["defaults", "overrides"])
def test_vagrantfile_validates(vagrant_env, extra_env):
    # The libvirt provider is the usable one here, so its block is validated too.
    result = vagrant(vagrant_env, "validate", extra_env=extra_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Vagrantfile validated successfully" in result.stdout


@pytest.mark.parametrize("key, value", [("MINSTACK_VM_MEMORY", "8G"), ("MINSTACK_NOVNC_PORT", "70000")])
def test_a_bad_override_is_refused_with_its_name(vagrant_env, key, value):
    result = vagrant(vagrant_env, "validate", extra_env={key: value})
    assert result.returncode != 0
    assert f"{key}={value} is not a whole number" in result.stdout + result.stderr


# ---- the configuration vagrant up would use ---------------------------------------------------
def test_box_is_debian_12(config):
    assert config["box"] == "debian/bookworm64"


def test_forwarded_ports_reach_minstacks_own_ports(config):
    ports = forwarded(config)
    assert set(ports) == {"horizon", "novnc"}
    assert ports["horizon"]["guest"] == PORTS["horizon"]
    assert ports["novnc"]["guest"] == PORTS["novnc"]
    assert (ports["horizon"]["host"], ports["novnc"]["host"]) == (8080, 6080)
    # the workshop password is public: nothing listens beyond the attendee's own machine
    assert {port["host_ip"] for port in ports.values()} == {"127.0.0.1"}


def test_resources_and_nested_virtualization(config):
    assert config["libvirt"] == {"cpus": 4, "memory": 8192, "nested": True, "cpu_mode": "host-passthrough",
                                 "errors": []}
    customize = config["virtualbox"]["customize"]
    assert ["modifyvm", "id", "--nested-hw-virt", "on"] in customize
    assert ["modifyvm", "id", "--cpus", 4] in customize
    assert ["modifyvm", "id", "--memory", "8192"] in customize
    assert config["virtualbox"]["errors"] == []


def test_environment_overrides(vagrant_env, dump_file):
    config = dump(vagrant_env, dump_file, OVERRIDES)
    ports = forwarded(config)
    assert (ports["horizon"]["host"], ports["novnc"]["host"]) == (18080, 16080)
    assert (ports["horizon"]["guest"], ports["novnc"]["guest"]) == (PORTS["horizon"], PORTS["novnc"])
    assert (config["libvirt"]["cpus"], config["libvirt"]["memory"]) == (6, 12288)
    assert ["modifyvm", "id", "--cpus", 6] in config["virtualbox"]["customize"]
    assert ["modifyvm", "id", "--memory", "12288"] in config["virtualbox"]["customize"]
    # provision.sh and, through the localrc, nova's console URL learn the forwarded ports
    assert config["provisioners"][0]["env"] == {"MINSTACK_HORIZON_PORT": "18080", "MINSTACK_NOVNC_PORT": "16080"}


def synced_repo(config):
    folders = {path: folder for path, folder in config["synced_folders"].items() if not folder.get("disabled")}
    assert len(folders) == 1, folders
    return next(iter(folders.values()))


def test_the_repository_is_synced_with_rsync(config):
    folder = synced_repo(config)
    assert folder["type"] == "rsync"
    assert (REPO / folder["hostpath"]).resolve() == REPO
    assert config["synced_folders"]["/vagrant"]["disabled"] is True
    # what stack.py creates in the VM's copy must survive the next sync (rsync --delete)
    for created in (VENV, OPENRC, CACHE, REPO / "localrc"):
        anchored = "/" + str(created.relative_to(REPO))
        assert anchored in folder["rsync__exclude"] or anchored + "/" in folder["rsync__exclude"], anchored


def test_provisioning_is_stack_py_with_the_workshop_localrc(config):
    assert [p["type"] for p in config["provisioners"]] == ["shell"]
    provisioner = config["provisioners"][0]
    assert provisioner["path"] == str(PROVISION.relative_to(REPO))
    assert provisioner["privileged"] is False  # stack.py gets root through sudo itself
    assert provisioner["args"] == [synced_repo(config)["guestpath"]]
    script = PROVISION.read_text()
    assert re.search(r'^cd "\$1"$', script, re.MULTILINE)
    runs = [line.strip() for line in script.splitlines() if "stack.py" in line and not line.lstrip().startswith("#")]
    assert runs == [f"./stack.py --config {LOCALRC.relative_to(REPO)}"]


def test_provision_script_is_valid_bash():
    result = subprocess.run(["bash", "-n", str(PROVISION)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ---- the workshop localrc on the VM's network --------------------------------------------------
def vm_host(address, network, gateway):
    """A freshly booted box: one NIC with the default route, as `ip -j -4` reports it."""
    routes = [{"dst": "default", "gateway": gateway, "dev": "eth0", "flags": []},
              {"dst": network, "dev": "eth0", "prefsrc": address, "flags": []}]
    addresses = [{"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
                 {"ifname": "eth0", "addr_info": [{"family": "inet", "local": address,
                                                   "prefixlen": int(network.split("/")[1])}]}]
    return HostFacts.from_ip_json(json.dumps(routes), json.dumps(addresses), "bookworm")


VIRTUALBOX_VM = vm_host("10.0.2.15", "10.0.2.0/24", "10.0.2.2")       # VirtualBox NAT
LIBVIRT_VM = vm_host("192.168.121.57", "192.168.121.0/24", "192.168.121.1")  # vagrant-libvirt's network


@pytest.mark.parametrize("host", [VIRTUALBOX_VM, LIBVIRT_VM], ids=["virtualbox", "libvirt"])
def test_workshop_localrc_loads_on_both_providers(host):
    settings = load_settings(LOCALRC, host, environ={})
    assert settings.warnings == ()
    assert settings.host_ip == host.default_ip  # HOST_IP: the default route's interface
    assert settings.enabled_services == frozenset(services.default_services())
    assert settings.novncproxy_url == "http://localhost:6080/vnc_lite.html"
    assert settings.novncproxy_url.endswith(":%d/vnc_lite.html" % PORTS["novnc"])


def test_minstack_defaults_would_clash_with_virtualboxs_nat_network():
    """Why the workshop localrc sets FIXED_RANGE."""
    with pytest.raises(Exception, match="FIXED_RANGE.*overlaps 10.0.2.0/24"):
        load_settings(None, VIRTUALBOX_VM, environ={})


def test_console_url_follows_the_forwarded_port():
    settings = load_settings(LOCALRC, VIRTUALBOX_VM, environ={"MINSTACK_NOVNC_PORT": "16080"})
    assert settings.novncproxy_url == "http://localhost:16080/vnc_lite.html"


def test_the_password_provision_sh_prints_is_the_one_minstack_uses():
    settings = load_settings(LOCALRC, VIRTUALBOX_VM, environ={})
    command = re.search(r"^password=\$\((.*)\)$", PROVISION.read_text(), re.MULTILINE)[1]
    printed = subprocess.run(["bash", "-c", command], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert printed == settings.admin_password + "\n"
    assert f"password {settings.admin_password}" in (REPO / "doc" / "workshop.md").read_text()
