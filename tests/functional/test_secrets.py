"""Secrets: files that must hold one are private; nothing else holds one, in any form.

Every secret minstack generated or was given (the four passwords, each service's database
password, the metadata proxy's shared secret, Horizon's SECRET_KEY, Tempest's credentials, the
demo SSH key) is looked for as it is, URL-encoded, JSON-escaped and shell-quoted
(:func:`minstack.masking.forms`):

- while the stack exists: every file under /etc, $DEST and the repository that holds one must be
  one of the files that need it, with a private mode (``test_files_holding_a_secret_are_...``);
- after the whole suite, the clean included (``final``): every log (a copy of $LOGDIR is kept as
  an artifact before the clean), every artifact (the output of every run), what the suite added
  to /var/log, and the command line of every process that ran while the suite did.
"""
from __future__ import annotations

import configparser
import os
import stat
from pathlib import Path

import pytest

from conftest import ARTIFACTS, REPO

# Files that hold a secret by design: path -> the modes allowed (never readable by others).
PRIVATE = {
    "/etc/keystone/keystone.conf": {0o640}, "/etc/glance/glance-api.conf": {0o640},
    "/etc/placement/placement.conf": {0o640}, "/etc/nova/nova.conf": {0o640}, "/etc/nova/nova-cpu.conf": {0o640},
    "/etc/neutron/neutron.conf": {0o640}, "/etc/neutron/neutron_ovn_agent.ini": {0o640},
    "/etc/openstack/clouds.yaml": {0o640}, "/etc/openstack-dashboard/.secret_key_store": {0o600},
    str(REPO / "openrc"): {0o600},
}
# ... those of the optional services the stack enables (tests/functional/localrc: swift, heat) ...
SERVICE_PRIVATE = {"s-proxy": {"/etc/swift/proxy-server.conf": {0o640}, "/etc/swift/swift.conf": {0o640}},
                   "h-api": {"/etc/heat/heat.conf": {0o640}}}
# ... those of the settings it turns on (GLANCE_USE_SWIFT: the swift store's account) ...
SETTING_PRIVATE = {"glance_use_swift": {"/etc/glance/glance-swift-store.conf": {0o640}}}
# ... and those of the plugins it enables (barbican).
PLUGIN_PRIVATE = {"barbican": {"/etc/barbican/barbican.conf": {0o640}}}


def volume_private(settings) -> dict[str, set[int]]:
    """Cinder's config and the Ceph keys, where the stack runs them (phases/cinder.py, ceph.py, nova.py):
    the admin keyring root 0600, client.cinder's root:stack 0640 (cinder-volume reads it), each
    daemon's own keyring ceph 0600 (the mon's is written by ceph-mon --mkfs), and the libvirt
    secret holding client.cinder's key (libvirtd keeps it as <uuid>.base64, root 0600)."""
    private = {}
    if settings.is_enabled("c-api", "c-sch", "c-vol", "c-bak"):
        private[str(settings.config_files["CINDER_CONF"])] = {0o640}  # the keys below are str too
    if settings.is_enabled("c-vol", "c-bak"):
        ceph = settings.data_dir / "ceph"
        private.update({"/etc/ceph/ceph.client.admin.keyring": {0o600},
                        "/etc/ceph/ceph.client.cinder.keyring": {0o640},
                        str(ceph / "mon" / "ceph-a" / "keyring"): {0o600, 0o640},
                        str(ceph / "mgr" / "ceph-x" / "keyring"): {0o600},
                        str(ceph / "osd" / "ceph-0" / "keyring"): {0o600}})
    if settings.is_enabled("n-cpu") and settings.is_enabled("c-vol"):
        from phases_import import phase_module
        secret_uuid = phase_module("nova").rbd_secret_uuid(settings)
        assert secret_uuid, "no Ceph fsid: the ceph phase did not run"
        private[f"/etc/libvirt/secrets/{secret_uuid}.base64"] = {0o600}
    return private


def private_trees(settings) -> list[Path]:
    """Directories whose files may hold secrets whatever their own mode, because the directory keeps
    every other user out: the Ceph monitor's store is the cluster's key database (ceph-mon --mkfs
    also keeps the keyring it was made with there, as text), its RocksDB files 0644 in a 0750 tree."""
    return [settings.data_dir / "ceph" / "mon"] if settings.is_enabled("c-vol", "c-bak") else []


def ceph_keys(settings) -> dict[str, str]:
    """Every cephx key of the cluster, by entity, from the keyrings minstack and Ceph wrote."""
    keyrings = list(Path("/etc/ceph").glob("*.keyring"))
    keyrings += list((settings.data_dir / "ceph").glob("*/ceph-*/keyring"))
    found = {}
    for keyring in keyrings:
        entity = None
        for line in keyring.read_text().splitlines():
            line = line.strip()
            if line.startswith("[") and line.endswith("]"):
                entity = line[1:-1]
            elif entity and line.replace(" ", "").startswith("key="):
                found[f"Ceph key of {entity}"] = line.split("=", 1)[1].strip()
    return found
# Not read for the file check: the venvs (code), images and instance disks (large, binary), and
# the logs, which the final scan reads.
SKIP_DIRS = ("venv", ".venv", ".git", "images", "instances", "logs", "cache", "artifacts", "tempest/.stestr")


def secrets_of_the_stack(settings) -> dict[str, str]:
    """name -> value of every secret of this stack (read while it exists)."""
    from minstack import mysql
    from minstack.derived_secrets import database_password, metadata_secret
    from minstack.ssh import key_path
    found = {"ADMIN_PASSWORD": settings.admin_password, "DATABASE_PASSWORD": settings.database_password,
             "RABBIT_PASSWORD": settings.rabbit_password, "SERVICE_PASSWORD": settings.service_password,
             "metadata proxy shared secret": metadata_secret(settings)}
    for account in mysql.accounts():
        found[f"database password of {account}"] = database_password(settings, account)
    from minstack.derived_secrets import service_key
    if any(plugin.name == "barbican" for plugin in settings.plugins):  # the example plugin's KEK
        found["Barbican simple_crypto KEK"] = service_key(settings, "barbican simple_crypto KEK")
    if settings.is_enabled("s-proxy"):
        found["Swift hash path suffix"] = service_key(settings, "swift hash path suffix")
    if settings.is_enabled("c-vol", "c-bak"):  # the cluster's keys (client.cinder's is in QEMU's secret too)
        keys = ceph_keys(settings)
        assert {"Ceph key of client.admin", "Ceph key of client.cinder", "Ceph key of mon."} <= set(keys), keys.keys()
        found.update(keys)
    horizon_key = Path("/etc/openstack-dashboard/.secret_key_store")
    if horizon_key.exists():
        found["Horizon SECRET_KEY"] = horizon_key.read_text().strip()
    tempest_conf = Path(settings.config_files["TEMPEST_CONFIG"])
    if tempest_conf.exists():
        parser = configparser.RawConfigParser()
        parser.read(tempest_conf)
        for section in parser.sections():
            for key, value in parser.items(section):
                if key.endswith("password") and value.strip('"') and value not in ("true", "false"):
                    found[f"tempest.conf [{section}] {key}"] = value.strip('"').replace("$$", "$")
    key = key_path(settings)
    if key.exists():  # the private part: the base64 lines after the public key's
        body = [line for line in key.read_text().splitlines() if not line.startswith("-----")]
        for number, line in enumerate(body[2:], 3):
            if len(line) >= 20:  # the short last line is mostly padding
                found[f"demo SSH private key, line {number}"] = line
    assert len(found) >= 10
    return found


def needles(secrets: dict[str, str]) -> dict[bytes, str]:
    """Each form of each secret -> what it is (its name and form, never the value)."""
    from minstack.masking import named_forms
    found: dict[bytes, str] = {}
    for name, value in secrets.items():
        for form_name, form in named_forms(value).items():
            found.setdefault(form.encode(), f"{name}, {form_name}")
    return found


def leaks_in(data: bytes, where: str, secrets: dict[str, str]) -> list[str]:
    return [f"{where} holds {what}" for needle, what in needles(secrets).items() if needle in data]


def readable_files(root: Path, skip: tuple[str, ...] = (), max_size: int | None = None) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not any(os.path.join(dirpath, d).endswith("/" + s) for s in skip)]
        for name in filenames:
            path = Path(dirpath, name)
            try:
                st = path.lstat()
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and (max_size is None or st.st_size <= max_size):
                files.append(path)
    return files


def test_files_holding_a_secret_are_the_expected_ones_and_private(settings, stack_secrets):
    roots = [Path("/etc"), settings.dest, settings.data_dir, REPO]
    candidates = {p for root in roots if root.exists() for p in readable_files(root, SKIP_DIRS, max_size=5 * 2**20)}
    # The localrc itself is where the given passwords come from: the user's file, as they keep it.
    candidates.discard(Path(settings.source))
    private = dict(PRIVATE) | volume_private(settings)
    for service, files in SERVICE_PRIVATE.items():
        if settings.is_enabled(service):
            private.update(files)
    for setting, files in SETTING_PRIVATE.items():
        if getattr(settings, setting):
            private.update(files)
    for plugin in settings.plugins:
        private.update(PLUGIN_PRIVATE.get(plugin.name, {}))
    holding, modes = {}, {}
    for path in sorted(candidates):
        try:  # a live database (Ceph's mon store, RocksDB) compacts: a listed table may be gone by now
            with open(path, "rb") as f:
                data, mode = f.read(), stat.S_IMODE(os.fstat(f.fileno()).st_mode)
        except FileNotFoundError:
            continue
        leaks = leaks_in(data, str(path), stack_secrets)
        if leaks:
            holding[str(path)], modes[str(path)] = leaks, mode
    assert set(private) <= set(holding), f"a file that should hold a secret does not: {set(private) - set(holding)}"
    wrong = []
    trees = private_trees(settings)
    for path in holding:
        mode = modes[path]
        allowed = private.get(path)
        tree = next((root for root in trees if Path(path).is_relative_to(root)), None)
        if tree is not None:  # a database of keys by design: its directory keeps everyone else out
            tree_mode = stat.S_IMODE(os.stat(tree).st_mode)
            if tree_mode & 0o007:
                wrong.append(f"{path} is in {tree} ({oct(tree_mode)}), which every user may enter: {holding[path]}")
            continue
        in_state = Path(path).is_relative_to(settings.state_dir) or Path(path).parent == Path(
            settings.config_files["TEMPEST_CONFIG"]).parent or Path(path).is_relative_to(settings.data_dir / "ssh")
        if mode & 0o007:
            wrong.append(f"{path} ({oct(mode)}) is readable by every user: {holding[path]}")
        elif allowed is None and not in_state:
            wrong.append(f"{path} ({oct(mode)}) is not a file that should hold a secret: {holding[path]}")
        elif allowed is not None and mode not in allowed:
            wrong.append(f"{path} is {oct(mode)}, not {' or '.join(map(oct, allowed))}")
    assert not wrong, "\n".join(wrong)


def test_credential_files_are_private(host, settings):
    for path, modes in [(settings.state_dir / "passwords", {0o600}), (REPO / "openrc", {0o600}),
                        (Path("/etc/openstack/clouds.yaml"), {0o640}),
                        (Path("/etc/keystone/keystone.conf"), {0o640}),
                        (Path(settings.config_files["TEMPEST_CONFIG"]), {0o640})]:
        f = host.file(str(path))
        assert f.exists, path
        assert f.mode in modes, (path, oct(f.mode))


@pytest.mark.final
def test_no_secret_in_any_log_output_var_log_or_command_line(settings, stack_secrets, command_lines,
                                                              var_log_before):
    """After everything: every log, every run's output, what the suite added to /var/log, and the
    command line of every process seen while it ran."""
    files = [p for root in (ARTIFACTS, settings.logdir) if root.exists() for p in readable_files(root)]
    assert any(p.name == "stack.log" for p in files) and any(p.parent.name == "phases" for p in files), \
        "the logs of the stack are missing: nothing to scan"
    assert any(p.name.endswith("-stack.log") for p in files)  # the output of the runs
    leaks = []
    for path in files:
        leaks += leaks_in(path.read_bytes(), str(path), stack_secrets)
    for path in Path("/var/log").rglob("*"):
        try:
            if not path.is_file():
                continue
            st = path.stat()
            inode, size = var_log_before.get(str(path), (None, 0))
            with open(path, "rb") as f:
                if inode == st.st_ino and st.st_size >= size:
                    f.seek(size)  # only what the suite added
                data = f.read()
        except OSError:
            continue
        leaks += leaks_in(data, str(path), stack_secrets)
    command_lines.stopped.set()
    command_lines.join(5)
    assert len(command_lines.seen) > 100, "the command lines were not sampled"
    for line in sorted(command_lines.seen):
        leaks += leaks_in(line.encode(), f"the command line {line[:60]!r}...", stack_secrets)
    assert not leaks, "\n".join(leaks)
