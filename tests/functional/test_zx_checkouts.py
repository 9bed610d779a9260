"""Nova and oslo.log from git checkouts on a stacked host (issue 11), then back to the releases.

No git host is reachable here, so the test builds real repositories from the PyPI
sdists (the versions the lock pins), tagged with the release so pbr computes the
right version, plus branches with one observable change each: a log line at
nova-api's start (feature-a, feature-b) and one in oslo.log's setup() (its
stable/<release> branch, the default branch a library checkout gets).

Order matters (one module, runs before the lifecycle file): switch to the
checkouts, edit and restart one daemon, refuse to move a modified tree, switch
Nova's branch, an unreachable host, and back to the releases.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ARTIFACTS, REPO
from test_zz_lifecycle import daemon_pids

# It changes the stack (lifecycle: only with --stack) and restarts most daemons several times (6.5 min
# here, 2026-11-30): the long tier runs it (tests/run-long), before test_long.py.
pytestmark = [pytest.mark.lifecycle, pytest.mark.long]

SDISTS = Path("/var/cache/minstack/test-sdists")   # kept between runs: one download per version
NOVA_MARK = "minstack-checkout: nova branch"
OSLO_MARK = "minstack-checkout: oslo.log from git"
WSGI_APP = "nova/api/openstack/wsgi_app.py"
# daemons that run no venv code: a checkout never restarts them
NOT_VENV = ("mysql", "rabbitmq", "epmd", "memcached", "ovsdb-server", "ovs-vswitchd", "ovn-northd", "ovn-controller",
            "libvirtd", "virtlogd", "virtlockd")


def git(tree: Path, *args: str) -> str:
    """git as root, also in the stack user's trees in $DEST."""
    return subprocess.run(["git", "-C", str(tree), "-c", "safe.directory=*", "-c", "user.name=minstack tests",
                           "-c", "user.email=tests@minstack", *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def sdist(name: str, version: str) -> Path:
    """The sdist of name==version, downloaded once into SDISTS."""
    pattern = re.compile(rf"{re.sub(r'[-_.]+', '[-_.]', name)}-{re.escape(version)}\.tar\.gz", re.IGNORECASE)
    found = [p for p in SDISTS.glob("*.tar.gz") if pattern.fullmatch(p.name)]
    if not found:
        SDISTS.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        f"{name}=={version}", "-d", str(SDISTS)], check=True, capture_output=True)
        found = [p for p in SDISTS.glob("*.tar.gz") if pattern.fullmatch(p.name)]
    return found[0]


def repository(where: Path, name: str, version: str) -> Path:
    """A git repository of the sdist's tree, its one commit tagged as the release."""
    subprocess.run(["tar", "--no-same-owner", "-xzf", str(sdist(name, version)), "-C", str(where)], check=True)
    tree = next(p for p in where.iterdir() if p.is_dir() and p.name.lower().replace("_", ".").startswith(name))
    tree = tree.rename(where / name)
    (tree / "PKG-INFO").unlink()
    for info in tree.glob("*.egg-info"):
        subprocess.run(["rm", "-rf", str(info)], check=True)
    git(tree, "init", "-q", "-b", "master")
    git(tree, "add", "-A")
    git(tree, "commit", "-qm", f"{name} {version} from its sdist")
    git(tree, "tag", "-a", "-m", version, version)
    return tree


def branch(tree: Path, name: str, path: str, old: str, new: str) -> str:
    """Branch name off master with one change (old -> new in path); its sha."""
    git(tree, "checkout", "-q", "-b", name, "master")
    source = tree / path
    text = source.read_text()
    assert old in text, f"{path} no longer has {old!r}"
    source.write_text(text.replace(old, new, 1))
    git(tree, "commit", "-qam", f"{name}: an observable change")
    git(tree, "checkout", "-q", "master")
    return git(tree, "rev-parse", f"{name}^{{commit}}")


def locked_version(name: str) -> str:
    lock = (REPO / "files/requirements/2026.2-lock.txt").read_text()
    return re.search(rf"(?m)^{re.sub(r'[-_.]+', '[-_.]', name)}==(\S+)", lock, re.IGNORECASE)[1]


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    where = tmp_path_factory.mktemp("git")
    nova = repository(where, "nova", locked_version("nova"))
    init = "    init_global_data(conf_files, name, prog)\n"
    shas = {b: branch(nova, b, WSGI_APP, init, init + f'    LOG.info("{NOVA_MARK} {b}")\n')
            for b in ("feature-a", "feature-b")}
    oslo = repository(where, "oslo.log", locked_version("oslo.log"))
    setup = "    sys.excepthook = _create_logging_excepthook(product_name)\n"
    branch(oslo, "stable/2026.2", "oslo_log/log.py", setup, setup + f'    getLogger(product_name).info("{OSLO_MARK}")\n')
    return {"nova": nova, "oslo.log": oslo, **shas}


def localrc_with(base: Path, directory: Path, name: str, **settings: str) -> Path:
    path = directory / name
    path.write_text(base.read_text() + "".join(f"{key}={value}\n" for key, value in settings.items()))
    return path


def run(script: str, localrc: Path, *args: str, timeout: float = 1800):
    """./stack.py ARGS --config LOCALRC as a user runs it; its output is kept in tests/artifacts."""
    argv = [sys.executable, str(REPO / script), *args, "--config", str(localrc)]
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200"})
    proc.seconds = time.monotonic() - started
    name = f"zx-{time.strftime('%H%M%S')}-{localrc.name}-{'-'.join(args) or 'stack'}.log"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / name).write_text(f"$ {' '.join(argv)}\n# exit {proc.returncode} after {proc.seconds:.1f}s\n"
                                  f"{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    print(f"{' '.join(argv[1:])}: exit {proc.returncode} in {proc.seconds:.1f} s")
    return proc


def said(proc) -> str:
    """What a run printed, as one line: rich's wrapping and panel borders taken out."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", proc.stdout + proc.stderr).split())


class LogTail:
    """What a daemon's log gained since this object was made."""

    def __init__(self, settings, daemon: str):
        self.path = settings.logdir / f"{daemon}.log"
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def new(self) -> str:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")


def editables(settings) -> dict[str, str]:
    """What uv says is installed editable in the services' venv: name -> project location."""
    uv = Path(sys.executable).parent / "uv"
    listed = subprocess.run([str(uv), "pip", "list", "--python", str(settings.venv / "bin" / "python"), "--editable",
                             "--format", "json"], check=True, capture_output=True, text=True).stdout
    return {entry["name"]: entry.get("editable_project_location") for entry in json.loads(listed)}


def status_codes(localrc: Path) -> dict[str, str]:
    proc = run("stack.py", localrc, "status", "--json")
    return {row["name"]: row["code"] for row in json.loads(proc.stdout)}


@pytest.fixture(scope="module")
def silent_host():
    """A git host that accepts connections and never answers (a stalled server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


@pytest.fixture(scope="module")
def localrcs(localrc, repos, silent_host, tmp_path_factory):
    where = tmp_path_factory.mktemp("localrc")
    common = dict(LIBS_FROM_GIT="oslo.log", OSLOLOG_REPO=str(repos["oslo.log"]))
    return {"a": localrc_with(localrc, where, "localrc-a", NOVA_REPO=f"file://{repos['nova']}",
                              NOVA_BRANCH="feature-a", **common),
            "b": localrc_with(localrc, where, "localrc-b", NOVA_REPO=f"file://{repos['nova']}",
                              NOVA_BRANCH="feature-b", **common),
            "unreachable": localrc_with(localrc, where, "localrc-unreachable", NOVA_BRANCH="feature-a"),
            "silent": localrc_with(localrc, where, "localrc-silent", GIT_BASE=silent_host, NOVA_BRANCH="feature-a")}


def test_nova_and_oslo_log_come_from_their_checkouts(settings, repos, localrcs):
    pids = daemon_pids(settings)
    api_log = LogTail(settings, "nova-api")
    keystone_log = LogTail(settings, "keystone")
    proc = run("stack.py", localrcs["a"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    # installed editable from $DEST, as uv sees it
    found = editables(settings)
    assert found.get("nova") == str(settings.dest / "nova"), found
    assert found.get("oslo-log") == str(settings.dest / "oslo.log"), found
    assert git(settings.dest / "nova", "rev-parse", "HEAD") == repos["feature-a"]
    # the change is in the real log: nova-api ran feature-a's code, every oslo service the library's
    assert f"{NOVA_MARK} feature-a" in api_log.new()
    assert OSLO_MARK in keystone_log.new()
    # distro daemons kept running: only what runs the changed code restarted
    after = daemon_pids(settings)
    kept = {name: pid for name, pid in pids.items() if name in NOT_VENV}
    assert len(kept) >= 8 and {name: after[name] for name in kept} == kept
    assert after["nova-api"] != pids["nova-api"] and after["keystone"] != pids["keystone"]
    codes = status_codes(localrcs["a"])
    run("stack.py", localrcs["a"], "status")  # the table, for the artifacts
    assert codes["nova-api"] == f"nova checkout {settings.dest / 'nova'} @ {repos['feature-a'][:7]}"
    assert codes["keystone"].endswith("(release)")
    print(f"switching Nova and oslo.log to checkouts on a stacked host: {proc.seconds:.1f} s")


def test_an_edit_and_a_restart_of_n_api_is_enough(settings, localrcs):
    source = settings.dest / "nova" / WSGI_APP
    source.write_text(source.read_text().replace(f"{NOVA_MARK} feature-a", f"{NOVA_MARK} edited in place"))
    pids = daemon_pids(settings)
    api_log = LogTail(settings, "nova-api")
    proc = run("stack.py", localrcs["a"], "restart", "n-api")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{NOVA_MARK} edited in place" in api_log.new()
    after = daemon_pids(settings)
    assert after["nova-api"] != pids["nova-api"]
    assert {k: v for k, v in after.items() if k != "nova-api"} == {k: v for k, v in pids.items() if k != "nova-api"}
    assert status_codes(localrcs["a"])["nova-api"].endswith("(modified)")
    print(f"./stack.py restart n-api after an edit: {proc.seconds:.1f} s")


def test_a_modified_tree_is_not_moved(settings, localrcs):
    pids = daemon_pids(settings)
    proc = run("stack.py", localrcs["b"])
    assert proc.returncode != 0
    out = said(proc)
    assert "has uncommitted changes" in out and WSGI_APP in out and "RECLONE=True" in out, out[-2000:]
    assert "edited in place" in (settings.dest / "nova" / WSGI_APP).read_text()
    assert daemon_pids(settings) == pids
    git(settings.dest / "nova", "checkout", "--", WSGI_APP)


def test_switching_the_branch_restarts_only_novas_daemons(settings, repos, localrcs):
    pids = daemon_pids(settings)
    api_log = LogTail(settings, "nova-api")
    nova_phase = (settings.logdir / "phases" / "nova.log").stat().st_size
    proc = run("stack.py", localrcs["b"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert git(settings.dest / "nova", "rev-parse", "HEAD") == repos["feature-b"]
    assert f"{NOVA_MARK} feature-b" in api_log.new()
    after = daemon_pids(settings)
    restarted = sorted(name for name in pids if after[name] != pids[name])
    assert restarted == sorted(name for name in pids if name.startswith("nova-")), restarted
    with open(settings.logdir / "phases" / "nova.log") as f:
        f.seek(nova_phase)
        phase_log = f.read()
    # the migrations did not change between the branches: no db sync
    assert "step db sync: skipped" in phase_log and "step api_db sync: skipped" in phase_log
    print(f"switching Nova's branch: {proc.seconds:.1f} s, restarted {', '.join(restarted)}")


@pytest.mark.parametrize("which, seconds", [("unreachable", 10), ("silent", 30)])
def test_an_unreachable_git_host_is_named_and_changes_nothing(settings, localrcs, silent_host, which, seconds):
    url = {"unreachable": "https://opendev.org", "silent": silent_host}[which] + "/openstack/nova.git"
    pids = daemon_pids(settings)
    state = (settings.state_dir / "state.json").read_bytes()
    head = git(settings.dest / "nova", "rev-parse", "HEAD")
    proc = run("stack.py", localrcs[which], timeout=120)
    assert proc.returncode != 0 and proc.seconds < seconds, said(proc)
    out = said(proc)
    assert f"cannot reach the git repository {url}" in out and "OFFLINE=True" in out and "local" in out, out
    assert daemon_pids(settings) == pids
    assert (settings.state_dir / "state.json").read_bytes() == state
    assert git(settings.dest / "nova", "rev-parse", "HEAD") == head


def test_back_to_the_releases(settings, localrc):
    pids = daemon_pids(settings)
    proc = run("stack.py", localrc)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert editables(settings) == {}
    codes = status_codes(localrc)
    assert codes["nova-api"] == f"nova {locked_version('nova')} (release)"
    after = daemon_pids(settings)
    assert after["nova-api"] != pids["nova-api"] and after["keystone"] != pids["keystone"]  # oslo.log went back too
    # the trees stay, as in DevStack (they may hold someone's work); these are the test's own
    for name in ("nova", "oslo.log"):
        subprocess.run(["rm", "-rf", "--one-file-system", str(settings.dest / name)], check=True)
