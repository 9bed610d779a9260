"""The functional suite: a real host, real services, no mocks.

With --stack (the README's test command) the session begins by running
./stack.py with tests/functional/localrc and the lifecycle tests end it with
./unstack.py --clean.  Without --stack the checks run against a host that is
already stacked (with the same localrc) and leave it as it is.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import fingerprint

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
DEFAULT_LOCALRC = Path(__file__).resolve().parent / "localrc"


def pytest_collection_modifyitems(config, items):
    """Lifecycle tests only with --stack (they end by cleaning the host), the long tier only with --long;
    tests marked ``final`` (the secrets scan) after every other test, the clean included."""
    def wanted(item) -> bool:
        if "lifecycle" in item.keywords and not config.getoption("--stack"):
            return False
        return "long" not in item.keywords or config.getoption("--long")
    keep = [i for i in items if wanted(i)]
    dropped = [i for i in items if not wanted(i)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = [i for i in keep if "final" not in i.keywords] + [i for i in keep if "final" in i.keywords]


@pytest.fixture(scope="session")
def localrc(pytestconfig) -> Path:
    return Path(pytestconfig.getoption("--localrc") or DEFAULT_LOCALRC).resolve()


class Minstack:
    """Runs ./stack.py and ./unstack.py as a user would, keeping their output as artifacts."""

    def __init__(self, localrc: Path):
        self.localrc = localrc
        self.runs = 0

    def run(self, script: str, *args: str, env: dict | None = None, timeout: float = 3000):
        self.runs += 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, str(REPO / script), "--config", str(self.localrc), *args]
        started = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {}), "COLUMNS": "160"})
        seconds = time.monotonic() - started
        name = f"{self.runs:02d}-{script.removesuffix('.py')}-{'-'.join(args) or 'stack'}.log"
        (ARTIFACTS / name.replace("/", "_")).write_text(
            f"$ {' '.join(argv)}\n# exit {proc.returncode} after {seconds:.0f}s\n{proc.stdout}\n--- stderr ---\n"
            f"{proc.stderr}")
        proc.seconds = seconds
        return proc

    def stack(self, *args, **kw):
        return self.run("stack.py", *args, **kw)

    def unstack(self, *args, **kw):
        return self.run("unstack.py", *args, **kw)


def host_network_snapshot() -> dict:
    """The host's own routes and addresses, minus the devices minstack makes."""
    from minstack.hostinfo import minstack_owned_device
    routes = json.loads(subprocess.run(["ip", "-j", "route", "show"], capture_output=True, text=True).stdout)
    addrs = json.loads(subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True).stdout)
    return {
        "routes": sorted(f"{r.get('dst')} via {r.get('gateway')} dev {r.get('dev')}" for r in routes
                         if not minstack_owned_device(r.get("dev", ""))),
        "addresses": sorted(f"{a['ifname']} {i['local']}/{i['prefixlen']}" for a in addrs
                            if not minstack_owned_device(a["ifname"]) for i in a.get("addr_info", [])),
    }


@pytest.fixture(scope="session")
def minstack_cli(localrc) -> Minstack:
    return Minstack(localrc)


@pytest.fixture(scope="session")
def network_before() -> dict:
    return host_network_snapshot()


class CommandLines(threading.Thread):
    """Every command line of every process while the suite runs, for the secrets scan at its end.

    /proc is read every 20 ms; a process is read on each of its first ticks (its command line is
    its parent's until it has called exec) and again every second while it lives."""

    def __init__(self):
        super().__init__(name="command-lines", daemon=True)
        self.seen: set[str] = set()
        self.first_seen: dict[str, float] = {}
        self.stopped = threading.Event()

    def run(self):
        last_full = 0.0
        while not self.stopped.wait(0.02):
            now = time.monotonic()
            full = now - last_full > 1.0
            last_full = now if full else last_full
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                first = self.first_seen.setdefault(pid, now)
                if not full and now - first > 0.5:
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        argv = f.read()
                except OSError:
                    continue
                if argv:
                    self.seen.add(argv.replace(b"\0", b" ").decode(errors="replace"))
            if full:  # pids that are gone may come back as new processes
                alive = set(os.listdir("/proc"))
                self.first_seen = {p: t for p, t in self.first_seen.items() if p in alive}


@pytest.fixture(scope="session", autouse=True)
def command_lines():
    sampler = CommandLines()
    sampler.start()
    yield sampler
    sampler.stopped.set()


def var_log_sizes() -> dict[str, tuple[int, int]]:
    """(inode, size) of every file under /var/log: the secrets scan reads what the suite added."""
    sizes = {}
    for path in Path("/var/log").rglob("*"):
        try:
            if path.is_file():
                st = path.stat()
                sizes[str(path)] = (st.st_ino, st.st_size)
        except OSError:
            continue
    return sizes


@pytest.fixture(scope="session", autouse=True)
def var_log_before() -> dict[str, tuple[int, int]]:
    return var_log_sizes()


@pytest.fixture(scope="session")
def host_before(pytestconfig, minstack_cli, localrc):
    """With --stack: the host's fingerprint after the distro packages are installed (they stay by
    design) and before anything else of a stack exists; None without --stack."""
    if not pytestconfig.getoption("--stack"):
        return None
    if os.geteuid() != 0:
        pytest.exit("the functional suite stacks this host: run it as root", returncode=2)
    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # the secrets scan reads this run's artifacts only
    proc = minstack_cli.stack("--only", "packages")
    if proc.returncode != 0:
        pytest.exit(f"./stack.py --only packages failed (exit {proc.returncode}); output in {ARTIFACTS}",
                    returncode=1)
    # What an earlier stack of this host left (an older minstack's leftovers, a run cut short) is
    # not this run's doing: --clean removes it first (its tools are installed now).  A fresh host
    # has nothing to remove.
    proc = minstack_cli.unstack("--clean")
    if proc.returncode != 0:
        pytest.exit(f"./unstack.py --clean before the first stack failed; output in {ARTIFACTS}", returncode=1)
    from minstack.cli import load_config
    config = load_config(str(localrc))
    before = fingerprint.take(keep_accounts=(config.stack_user,), dest=config.dest)
    fingerprint.save(before, ARTIFACTS / "fingerprint-before.json")
    return before


@pytest.fixture(scope="session")
def image_server(localrc, tmp_path_factory):
    """The server behind the localrc's IMAGE_URLS entry on 127.0.0.1 (image_server.py), for the
    whole session (re-stacks download from it too); None when the localrc names no such URL.

    What it serves is minstack's offline test image, built here by minstack's own builder (cached
    in files/cache like the stack's own build), so a fresh host needs nothing prepared.

    It reads IMAGE_URLS from a load of its own: the session's `settings` must not be loaded before
    the first stack, which generates (and keeps) the passwords a load before it would invent."""
    from image_server import ImageServer, served_here
    from minstack import testimage
    from minstack.cli import load_config
    from minstack.paths import CACHE
    urls = [url for url in load_config(str(localrc)).image_urls if served_here(url)]
    if not urls:
        yield None
        return
    image = testimage.build_test_image(CACHE, tmp_path_factory.mktemp("testimage"))
    server = ImageServer(urls[0], image, ARTIFACTS / "image-server.log").start()
    yield server
    server.stop()



@pytest.fixture(scope="session", autouse=True)
def stacked(pytestconfig, command_lines, var_log_before, minstack_cli, network_before, host_before, image_server,
            request):
    """With --stack: the first ./stack.py run, which every other test builds on.

    The host's fingerprint comes first (taken before anything of a stack exists, once the packages
    are installed), then the image server (its image is built with those packages).  A copy of the
    served image cached by an earlier session is removed, so that this run really downloads,
    checks and uploads it."""
    if not pytestconfig.getoption("--stack"):
        return None
    if image_server:
        from minstack import images
        from minstack.paths import CACHE
        images.cached_path(image_server.url, CACHE).unlink(missing_ok=True)
    proc = minstack_cli.stack()
    if proc.returncode != 0:
        pytest.exit(f"./stack.py failed (exit {proc.returncode}); output in {ARTIFACTS}:\n"
                    f"{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}", returncode=1)
    # what the stack generated, while it exists: the secrets scan runs after the clean
    request.getfixturevalue("stack_secrets")
    return proc


@pytest.fixture(scope="session")
def stack_secrets(settings) -> dict[str, str]:
    """Every secret minstack generated or was given, by name (see test_secrets.py)."""
    from test_secrets import secrets_of_the_stack
    return secrets_of_the_stack(settings)


@pytest.fixture(scope="session")
def settings(localrc):
    from minstack.cli import load_config
    return load_config(str(localrc))


@pytest.fixture(scope="session")
def test_image(settings) -> dict:
    """The bootable image this stack uploaded, as the stack recorded it: name, console marker, and
    whether minstack built it offline (minstack.images.uploaded)."""
    from minstack import images
    uploaded = images.uploaded(settings)
    assert uploaded, f"{images.record_file(settings)} lists no image: the image phase did not run"
    return uploaded[0]


@pytest.fixture(scope="session")
def admin_conn(settings):
    from minstack import identity
    return identity.admin_connection(settings)


def bash(command: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """A command as a user types it, in a login-less bash in the repository."""
    return subprocess.run(["bash", "-c", command], cwd=REPO, capture_output=True, text=True, timeout=timeout)
