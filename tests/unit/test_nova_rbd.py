"""Nova's side of RBD volumes, without a cloud: nova.conf's [libvirt] rbd_* and [cinder], and the
libvirt secret holding client.cinder's key (defined from a file, its value set from a file)."""
from __future__ import annotations

import base64
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

from minstack import catalogue, templates
from minstack.context import Context
from minstack.pipeline import phase_module
from minstack.state import State
from test_settings import load

ceph = phase_module("ceph")
nova = phase_module("nova")

KEY = "AQBzZWNyZXRzZWNyZXRzZWNyZXRzZWNyZXQtMTIzNA=="
FSID = "7c0b8d4e-3f6a-4c1e-9a55-1f0d2b3c4d5e"


def render_nova_conf(tmp_path, text="", compute_only=False, **overrides):
    s = load(tmp_path, text)
    values = dict(conf_dir=Path("/etc/nova"), rootwrap_conf=Path("/etc/nova/rootwrap.conf"),
                  state_path=Path("/opt/stack/data/nova"), lock_path=Path("/opt/stack/data/nova/locks"),
                  virt_type="qemu", cpu_mode="none", cpu_models=[], novnc_web=Path("/usr/share/novnc"),
                  metadata_secret="m", ovsdb_connection=catalogue.OVSDB_CONNECTION,
                  rbd_user="cinder", rbd_secret_uuid="5678")
    values.update(overrides)
    return templates.render("nova/nova.conf.j2", s, compute_only=compute_only, **values)


def section(text: str, name: str) -> str:
    return text.split(f"\n[{name}]\n", 1)[1].split("\n[", 1)[0]


def test_nova_conf_and_nova_cpu_conf_name_the_rbd_client_and_secret(tmp_path):
    for compute_only in (False, True):
        libvirt = section(render_nova_conf(tmp_path, compute_only=compute_only), "libvirt")
        assert "\nrbd_user = cinder\n" in libvirt and "\nrbd_secret_uuid = 5678\n" in libvirt
    text = render_nova_conf(tmp_path, "disable_service c-vol\n", rbd_user=None, rbd_secret_uuid=None)
    assert "rbd_" not in text


def test_nova_finds_cinder_as_volumev3_with_the_nova_user(tmp_path):
    for compute_only in (False, True):
        cinder = section(render_nova_conf(tmp_path, compute_only=compute_only), "cinder")
        for line in ("catalog_info = volumev3::publicURL", "os_region_name = RegionOne", "username = nova",
                     "auth_type = password", "project_name = service"):
            assert f"\n{line}\n" in cinder, line
    assert "\n[cinder]\n" not in render_nova_conf(tmp_path, "disable_service cinder\n", rbd_user=None,
                                                   rbd_secret_uuid=None)


def test_nova_comes_after_ceph_and_attaches_rbd_only_with_a_volume_service(tmp_path):
    assert "ceph" in nova.PHASE.requires
    assert nova.attaches_rbd(load(tmp_path))
    assert not nova.attaches_rbd(load(tmp_path, "disable_service c-vol\n"))
    assert not nova.attaches_rbd(load(tmp_path, "disable_service n-cpu\n"))


def test_secret_xml_is_minstacks_and_of_usage_ceph():
    secret_uuid = ceph.secret_uuid(FSID)
    fields = nova.secret_fields(nova.secret_xml(secret_uuid, FSID))
    assert fields == {"ephemeral": "no", "private": "no", "uuid": secret_uuid,
                      "description": f"minstack: client.cinder of Ceph cluster {FSID}",
                      "usage": "ceph", "name": f"client.cinder secret {FSID}"}
    # libvirt prints it back indented its own way: the fields still compare equal
    dumped = (f"<secret ephemeral='no' private='no'>\n  <uuid>{secret_uuid}</uuid>\n  <description>minstack: "
              f"client.cinder of Ceph cluster {FSID}</description>\n  <usage type='ceph'>\n    <name>client.cinder "
              f"secret {FSID}</name>\n  </usage>\n</secret>\n")
    assert nova.secret_fields(dumped) == fields
    assert nova.secret_fields("not xml") == {}


@dataclass
class Result:
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class FakeVirsh:
    """libvirt's secret store as virsh shows it: secret-set-value --file decodes the file's base64."""

    def __init__(self):
        self.argvs: list[list[str]] = []
        self.xml: dict[str, str] = {}
        self.value: dict[str, bytes] = {}
        self.seen_value_files: list[str] = []

    def run(self, argv, check=True, quiet=False, **kwargs):
        argv = [str(a) for a in argv]
        self.argvs.append(argv)
        assert argv[:3] == [nova.VIRSH, "-c", "qemu:///system"] and quiet
        command, args = argv[3], argv[4:]
        if command == "secret-define":
            text = Path(args[args.index("--file") + 1]).read_text()
            self.xml[nova.secret_fields(text)["uuid"]] = text
            return Result(0, "Secret defined\n")
        if command == "secret-set-value":
            secret = args[args.index("--secret") + 1]
            raw = Path(args[args.index("--file") + 1]).read_text()
            self.seen_value_files.append(raw)
            self.value[secret] = base64.b64decode(raw)
            return Result(0)
        if command == "secret-dumpxml":
            return Result(0, self.xml[args[0]]) if args[0] in self.xml else Result(1, stderr="no secret")
        if command == "secret-get-value":
            if args[0] not in self.value:
                return Result(1, stderr="secret has no value")
            return Result(0, base64.b64encode(self.value[args[0]]).decode() + "\n")
        if command == "secret-undefine":
            self.xml.pop(args[0], None)
            self.value.pop(args[0], None)
            return Result(0)
        raise AssertionError(argv)


def secret_context(tmp_path, monkeypatch, sh):
    settings = load(tmp_path, f"DATA_DIR={tmp_path}/data\n")
    (tmp_path / "data" / "ceph").mkdir(parents=True)
    ceph.layout(settings).fsid_file.write_text(f"{FSID}\n")
    keyring = tmp_path / "ceph.client.cinder.keyring"
    keyring.write_text(f"[client.cinder]\n\tkey = {KEY}\n")
    monkeypatch.setattr(ceph, "keyring_path", lambda entity: tmp_path / f"ceph.{entity}.keyring")
    virsh = tmp_path / "virsh"
    virsh.touch()
    monkeypatch.setattr(nova, "VIRSH", str(virsh))
    return Context(settings=settings, phase="nova", log=logging.getLogger("t"), sh=sh, supervisor=None,
                   state=State(tmp_path / "state.json"), log_path=tmp_path / "p.log")


def test_the_secret_is_made_once_its_key_never_on_a_command_line(tmp_path, monkeypatch):
    sh = FakeVirsh()
    ctx = secret_context(tmp_path, monkeypatch, sh)
    secret_uuid = ceph.secret_uuid(FSID)
    assert nova.secret_differs(ctx) == ["missing"]
    nova.ensure_secret(ctx, ["missing"])
    assert all(KEY not in word for argv in sh.argvs for word in argv)
    assert sh.seen_value_files == [KEY]                    # the base64 key exactly, no newline
    assert sh.value[secret_uuid] == base64.b64decode(KEY)  # libvirt holds the raw bytes QEMU hands librados
    assert nova.secret_differs(ctx) == []                  # a second run changes nothing
    assert not list(Path(__import__("tempfile").gettempdir()).glob("minstack-secret-*"))


def test_a_changed_key_resets_only_the_value_and_a_changed_definition_redefines(tmp_path, monkeypatch):
    sh = FakeVirsh()
    ctx = secret_context(tmp_path, monkeypatch, sh)
    secret_uuid = ceph.secret_uuid(FSID)
    nova.ensure_secret(ctx, ["missing"])
    sh.value[secret_uuid] = b"old"
    assert nova.secret_differs(ctx) == ["value"]
    sh.argvs.clear()
    nova.ensure_secret(ctx, ["value"])
    assert [argv[3] for argv in sh.argvs] == ["secret-set-value", "secret-get-value"]
    sh.xml[secret_uuid] = sh.xml[secret_uuid].replace("usage type='ceph'", "usage type='volume'")
    assert nova.secret_differs(ctx) == ["definition"]
    sh.argvs.clear()
    nova.ensure_secret(ctx, ["definition"])
    assert [argv[3] for argv in sh.argvs] == ["secret-undefine", "secret-define", "secret-set-value",
                                              "secret-get-value"]
    assert nova.secret_differs(ctx) == []


def test_a_fresh_hosts_plan_asks_libvirt_nothing(tmp_path, monkeypatch):
    class NoShell:
        def run(self, argv, **kwargs):
            raise AssertionError(argv)
    settings = load(tmp_path, f"DATA_DIR={tmp_path}/data\n")
    ctx = Context(settings=settings, phase="nova", log=logging.getLogger("t"), sh=NoShell(), supervisor=None,
                  state=State(tmp_path / "state.json"), log_path=tmp_path / "p.log")
    assert nova.secret_differs(ctx) == ["missing"]


def test_clean_removes_minstacks_secrets_only(tmp_path, monkeypatch):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    ours = str(uuid.uuid4())
    theirs = str(uuid.uuid4())
    (secrets / f"{ours}.xml").write_text(nova.secret_xml(ours, FSID))
    (secrets / f"{ours}.base64").write_text(KEY)
    (secrets / f"{theirs}.xml").write_text(f"<secret><uuid>{theirs}</uuid><usage type='ceph'><name>x</name></usage>"
                                           "</secret>")
    assert nova.minstack_secrets(secrets) == [ours]
    monkeypatch.setattr(nova, "SECRETS_DIR", secrets)
    monkeypatch.setattr(nova, "VIRSH", str(tmp_path / "no-virsh"))  # libvirtd is down: the files go
    ctx = Context(settings=load(tmp_path), phase="nova", log=logging.getLogger("t"), sh=None, supervisor=None,
                  state=State(tmp_path / "state.json"), log_path=tmp_path / "p.log")
    nova.remove_secrets(ctx)
    assert sorted(p.name for p in secrets.iterdir()) == [f"{theirs}.xml"]
