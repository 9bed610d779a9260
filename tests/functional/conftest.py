"""The functional suite: a real host, real services, no mocks.

With --stack (the README's test command) the session begins by running
./stack.py with tests/functional/localrc and the lifecycle tests end it with
./unstack.py --clean.  Without --stack the checks run against a host that is
already stacked (with the same localrc) and leave it as it is.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
DEFAULT_LOCALRC = Path(__file__).resolve().parent / "localrc"


def pytest_collection_modifyitems(config, items):
    """Lifecycle tests only with --stack (they end by cleaning the host), the long tier only with --long."""
    def wanted(item) -> bool:
        if "lifecycle" in item.keywords and not config.getoption("--stack"):
            return False
        return "long" not in item.keywords or config.getoption("--long")
    keep = [i for i in items if wanted(i)]
    dropped = [i for i in items if not wanted(i)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


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
def stacked(pytestconfig, minstack_cli, network_before, image_server, request):
    """With --stack: the first ./stack.py run, which every other test builds on.

    A copy of the served image cached by an earlier session is removed first, so that this run
    really downloads, checks and uploads it."""
    if not pytestconfig.getoption("--stack"):
        return None
    if os.geteuid() != 0:
        pytest.exit("the functional suite stacks this host: run it as root", returncode=2)
    if image_server:
        from minstack import images
        from minstack.paths import CACHE
        images.cached_path(image_server.url, CACHE).unlink(missing_ok=True)
    proc = minstack_cli.stack()
    if proc.returncode != 0:
        pytest.exit(f"./stack.py failed (exit {proc.returncode}); output in {ARTIFACTS}:\n"
                    f"{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}", returncode=1)
    return proc


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
