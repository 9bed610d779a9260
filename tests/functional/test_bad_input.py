"""Bad input: each malformed or dangerous localrc gives a clear file:line error, a non-zero exit,
and changes nothing on the host (the real ./stack.py, as a user runs it)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import fingerprint
from conftest import ARTIFACTS, REPO

# (localrc text, the line the error must name, words the message must contain)
CASES = [
    ('HOST_IP=10.0.0.300\n', 1, "HOST_IP"),
    ('HOST_IP=127.0.0.1\nSERVICE_HOST=not-an-ip\n', 2, "SERVICE_HOST"),
    ('HOST_IP=127.0.0.1\nFIXED_RANGE=10.0.0.0/33\n', 2, "FIXED_RANGE"),
    ('HOST_IP=127.0.0.1\nFLOATING_RANGE=172.24.4.0/24\nPUBLIC_NETWORK_GATEWAY=172.24.5.1\n', 3,
     "PUBLIC_NETWORK_GATEWAY"),
    ('HOST_IP=127.0.0.1\nFIXED_RANGE=172.24.4.0/24\n', 2, "overlaps"),
    ('HOST_IP=127.0.0.1\n# the registries live here\nFLOATING_RANGE=203.0.113.0/24\n', 3, "overlaps"),
    ('HOST_IP=127.0.0.1\nFIXED_RANGE=192.0.2.0/24\n', 2, "overlaps"),
    ('HOST_IP=127.0.0.1\nenable_service n-cpus\n', 2, "did you mean 'n-cpu'"),
    ('HOST_IP=127.0.0.1\nENABLED_SERVICES=key,mysql,rabit\n', 2, "did you mean 'rabbit'"),
    ('HOST_IP=127.0.0.1\nADMIN_PASSWORD="unterminated\n', 2, 'unterminated "'),
    ("HOST_IP=127.0.0.1\nADMIN_PASSWORD='also unterminated\n", 2, "unterminated '"),
    ('HOST_IP=127.0.0.1\nADMIN_PASSWORD=$(cat /etc/shadow)\n', 2, "shell"),
    ('HOST_IP=127.0.0.1\nDATABASE_PASSWORD=`id`\n', 2, "shell"),
    ('HOST_IP=127.0.0.1\nif true; then X=1; fi\n', 2, "shell"),
    ('HOST_IP=127.0.0.1\nADMIN_PASSWORD=\n', 2, "ADMIN_PASSWORD"),
    ('HOST_IP=127.0.0.1\nAPI_WORKERS=many\n', 2, "API_WORKERS"),
    ('HOST_IP=127.0.0.1\nAPI_WORKERS=0\n', 2, "API_WORKERS"),
    ('HOST_IP=127.0.0.1\nLIBVIRT_TYPE=xen\n', 2, "LIBVIRT_TYPE"),
    ('HOST_IP=127.0.0.1\nINSTALL_METHOD=packages\n', 2, "not supported yet"),
    ('HOST_IP=127.0.0.1\nOPENSTACK_RELEASE=2023.1\n', 2, "2026.2"),
    ('HOST_IP=127.0.0.1\nDEST=relative/path\n', 2, "DEST"),
    ('HOST_IP=127.0.0.1\nOFFLINE=maybe\n', 2, "OFFLINE"),
    ('HOST_IP=127.0.0.1\nGLANCE_USE_SWIFT=True\n', 2, "GLANCE_USE_SWIFT=True stores images in Swift"),
    ('HOST_IP=127.0.0.1\nenable_service swift\nGLANCE_USE_SWIFT=perhaps\n', 3, "GLANCE_USE_SWIFT=perhaps"),
    ('HOST_IP=127.0.0.1\nSTACK_USER=root\n', 2, "STACK_USER"),
    ('HOST_IP=127.0.0.1\nCEPH_LOOPBACK_DISK_SIZE=1024T\n', 2, "does not fit"),
    ('HOST_IP=127.0.0.1\nCINDER_ENABLED_BACKENDS=lvm:lvmdriver-1\n', 2, "ceph:<name>"),
    (f'HOST_IP=127.0.0.1\nenable_plugin barbican {REPO}/tests/data/devstack-plugin\n', 2, "is a DevStack plugin"),
    ('HOST_IP=127.0.0.1\nenable_plugin barbican http://127.0.0.1:9/barbican.git\n', 2,
     "cannot reach the git repository http://127.0.0.1:9/barbican.git"),
    ('[[local|localrc]]\nHOST_IP=127.0.0.1\nADMIN_PASSWORD=x1x1x1x1\nDATABASE_PASSWORD=x1x1x1x1\n'
     '[[post-config|$NO_SUCH_CONF]]\n[DEFAULT]\ndebug = True\n', 5, "NO_SUCH_CONF"),
]

# Appended after each case (its line numbers stay as written): the passwords, so that even a
# case that wrongly passed validation could not generate and store new ones.
SAFETY = {"ADMIN_PASSWORD": "x1x1x1x1", "DATABASE_PASSWORD": "x1x1x1x1"}


def with_safety(text: str) -> str:
    """The case, then each SAFETY password the case does not set itself."""
    return text + "".join(f"{k}={v}\n" for k, v in SAFETY.items() if f"{k}=" not in text)


# RabbitMQ's users are asked through rabbitmqctl (2 s each time): compared once for the whole module.
PER_CASE = tuple(part for part in fingerprint.PARTS if part != "rabbitmq")


def host_fingerprint(settings, parts=PER_CASE) -> dict[str, list[str]]:
    """The lifecycle test's fingerprint of the host, plus minstack's own state and run lock."""
    return fingerprint.take(keep_accounts=(settings.stack_user,), parts=parts, dest=settings.dest,
                            trees=(settings.state_dir, Path("/run/minstack.lock")))


@pytest.fixture(scope="module")
def whole_host_before(settings):
    return host_fingerprint(settings, fingerprint.PARTS)


@pytest.mark.parametrize("text, line, words", CASES, ids=[f"case{i:02d}" for i in range(len(CASES))])
def test_bad_localrc_is_refused_at_its_line_and_changes_nothing(tmp_path, settings, whole_host_before,
                                                                 text, line, words, request):
    local_conf = text.startswith("[[")
    localrc = tmp_path / ("local.conf" if local_conf else "localrc")
    localrc.write_text(text if local_conf else with_safety(text))
    before = host_fingerprint(settings)
    # Should validation ever let a case through, this run still stops at its first phase, and
    # the fingerprint below reports what it touched: a bad-input test never stacks the host.
    proc = subprocess.run([sys.executable, str(REPO / "stack.py"), "--config", str(localrc), "--only", "prereqs"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MINSTACK_DEBUG_FAIL_PHASE": "prereqs"})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"bad-input-{request.node.callspec.id}.log").write_text(
        f"{text}\n--- exit {proc.returncode} ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    difference = fingerprint.settled_difference(before, lambda: host_fingerprint(settings))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    out = " ".join(proc.stdout.split())  # rich may wrap long lines
    assert f"{localrc}:{line}:" in out, out
    assert words in out, out
    assert "nothing was changed" in out
    assert not difference, "a refused configuration changed the host:\n" + "\n".join(difference)


def test_at_least_twenty_cases():
    assert len(CASES) >= 20


def test_the_refused_configurations_left_rabbitmq_and_the_rest_as_they_were(settings, whole_host_before):
    difference = fingerprint.settled_difference(whole_host_before,
                                                lambda: host_fingerprint(settings, fingerprint.PARTS))
    assert not difference, "\n".join(difference)
