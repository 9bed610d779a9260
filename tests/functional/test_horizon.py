"""Horizon in a real browser: Debian's headless chromium, driven through chromium-driver by selenium.

The walk a DevStack user takes: the demo user signs in, opens Project → Compute → Instances
(where the stack's check instance is listed), Network Topology and, with Cinder, Project →
Volumes → Volumes (a volume made for it is listed), signs out; admin signs in
and finds this host under Admin → Compute → Hypervisors.  Every page is reached through the
side menu, as a person clicks, and photographed into tests/artifacts/horizon/.

The browser tests share one browser; each one first brings it to the user it needs (signing
out and in as required), so any of them also runs alone (-k).  Before them, the phase's own
promises: files and modes, uWSGI dropped to the stack user after binding port 80, nothing
written into the read-only venv, the secret key nowhere but its 0600 file.
"""
from __future__ import annotations

import json
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import ARTIFACTS
from phases_import import phase_module

SHOTS = ARTIFACTS / "horizon"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Measured on the CI hosts: these flags let headless chromium run as root without GPU,
# QUIC or any call home.  The window is large enough for Horizon's side menu and tables.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-proxy-server", "--window-size=1400,1000")
# Horizon renders the first page of each dashboard slowly (imports on first use, API calls).
PAGE_TIMEOUT = 90

_VERIFY = phase_module("verify")
VERIFY_SERVER, VERIFY_NETWORK = _VERIFY.SERVER, _VERIFY.NETWORK   # "minstack-verify", "private"
ETC = "/etc/openstack-dashboard"


@pytest.fixture(scope="module", autouse=True)
def horizon_enabled(settings):
    # The localrc decides what is stacked; this module checks Horizon where it is.
    if not settings.is_enabled("horizon"):
        pytest.skip(f"{settings.source} does not enable horizon")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url: str) -> tuple[int, dict, bytes]:
    """One GET, redirects not followed: (status, headers, body)."""
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# ---- the phase's files, process and URLs, without a browser ----------------------------------------
def test_config_files_are_root_stack_and_the_key_is_stack_0600(host, settings):
    for directory in (ETC, f"{ETC}/local"):
        d = host.file(directory)
        assert (d.user, d.group, d.mode) == ("root", settings.stack_user, 0o750), directory
    for name in ("local/__init__.py", "local/local_settings.py", "root_redirect.py", "horizon-uwsgi.ini"):
        f = host.file(f"{ETC}/{name}")
        assert (f.user, f.group, f.mode) == ("root", settings.stack_user, 0o640), name
    key = host.file(f"{ETC}/.secret_key_store")
    assert (key.user, key.mode) == (settings.stack_user, 0o600)
    assert len(key.content_string.strip()) == 64


def test_settings_name_keystone_memcached_and_our_static_root(host, settings):
    text = host.file(f"{ETC}/local/local_settings.py").content_string
    assert f'OPENSTACK_KEYSTONE_URL = "http://{settings.service_host}:5000/v3"' in text
    assert "SESSION_ENGINE = 'django.contrib.sessions.backends.cache'" in text
    assert f'"{settings.base_services_host}:11211"' in text
    assert f'STATIC_ROOT = "{settings.data_dir}/horizon/static"' in text
    assert "DEBUG = False" in text and "COMPRESS_OFFLINE = True" in text


def test_secret_key_is_in_no_settings_file_or_log(host, settings):
    key = host.file(f"{ETC}/.secret_key_store").content_string.strip()
    for path in (f"{ETC}/local/local_settings.py", f"{ETC}/horizon-uwsgi.ini",
                 f"{settings.logdir}/horizon.log", f"{settings.logdir}/phases/horizon.log",
                 f"{settings.logdir}/stack.log"):
        f = host.file(path)
        assert not f.exists or key not in f.content_string, path


def test_nothing_was_written_into_the_venv(settings):
    """The venv is root-owned and read-only for us: settings and key live in /etc, assets in $DATA_DIR
    (only an enabled dashboard plugin's own files are copied into Horizon's tree, as DevStack does:
    heat-dashboard's, when Heat is on)."""
    [local] = settings.venv.glob("lib/python3*/site-packages/openstack_dashboard/local")
    assert not (local / "local_settings.py").exists()
    assert not (local / ".secret_key_store").exists()
    assert not list(settings.venv.glob("lib/python3*/site-packages/static"))


def test_uwsgi_binds_port_80_then_runs_as_stack(host, settings):
    procs = [p for p in host.process.filter(comm="uwsgi") if f"{ETC}/horizon-uwsgi.ini" in p.args]
    assert procs and {p.user for p in procs} == {settings.stack_user}
    assert len(procs) == 1 + settings.api_workers  # the master plus API_WORKERS workers
    listening = [s for s in host.socket.get_listening_sockets() if s.rsplit(":", 1)[-1] == "80"]
    assert listening == [f"tcp://{settings.service_host}:80"]


def test_root_url_redirects_to_the_dashboard(settings):
    status, headers, _ = fetch(f"http://{settings.service_host}/")
    assert (status, headers.get("Location")) == (302, "/dashboard/")
    status, _, _ = fetch(f"http://{settings.service_host}/no-such-page")
    assert status == 404


def test_login_page_answers_200(settings):
    status, _, body = fetch(f"http://{settings.service_host}/dashboard/auth/login/")
    assert status == 200 and b"id_username" in body


def test_uwsgi_serves_the_compressed_files_from_data_dir(settings):
    manifest = settings.data_dir / "horizon" / "static" / "dashboard" / "manifest.json"
    status, _, body = fetch(f"http://{settings.service_host}/dashboard/static/dashboard/manifest.json")
    assert status == 200 and json.loads(body) == json.loads(manifest.read_text())


class Dashboard:
    """A browser on Horizon, with the few gestures the tests need."""

    def __init__(self, driver: webdriver.Chrome, base_url: str, password: str):
        self.driver = driver
        self.base = base_url.rstrip("/")
        self.password = password
        self.wait = WebDriverWait(driver, PAGE_TIMEOUT)

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    # ---- who is signed in ----------------------------------------------------------------
    def user(self) -> str | None:
        names = self.driver.find_elements(By.CSS_SELECTOR, "li.user-menu .user-name")
        return names[0].text.strip() if names else None

    def sign_in(self, user: str) -> None:
        self.open("/auth/login/")
        self.wait.until(EC.visibility_of_element_located((By.ID, "id_username"))).send_keys(user)
        self.driver.find_element(By.ID, "id_password").send_keys(self.password)
        self.driver.find_element(By.ID, "loginBtn").click()
        # either the dashboard (its side menu) or the login form again with an error
        self.wait.until(lambda d: d.find_elements(By.ID, "sidebar")
                        or d.find_elements(By.CSS_SELECTOR, "form .alert-danger"))
        errors = [e.text for e in self.driver.find_elements(By.CSS_SELECTOR, "form .alert-danger")]
        assert not errors, f"{user} could not sign in: {errors}"

    def sign_out(self) -> None:
        """Through the user menu: Sign Out is a POST form there (Django 5 refuses a GET logout)."""
        self.driver.find_element(By.CSS_SELECTOR, "li.user-menu > a.dropdown-toggle").click()
        button = self.wait.until(EC.element_to_be_clickable(
            (By.XPATH, "//li[contains(@class,'user-menu')]//form//button[normalize-space(.)='Sign Out']")))
        button.click()
        self.wait.until(EC.visibility_of_element_located((By.ID, "id_username")))

    def as_user(self, user: str) -> None:
        """Make user the one signed in, from whatever state an earlier test left."""
        if self.user() == user:
            return
        if self.user() is not None:
            self.sign_out()
        self.sign_in(user)
        assert self.user() == user

    # ---- the side menu ---------------------------------------------------------------------
    def _expand(self, toggle) -> None:
        """Click a collapsed accordion entry of the side menu; wait until its contents show."""
        target = toggle.get_attribute("data-target")
        section = self.driver.find_element(By.CSS_SELECTOR, target)
        if "in" not in (section.get_attribute("class") or "").split():
            toggle.click()
        self.wait.until(lambda d: d.find_element(By.CSS_SELECTOR, target).is_displayed()
                        and "collapsing" not in d.find_element(By.CSS_SELECTOR, target).get_attribute("class"))

    def open_panel(self, dashboard: str, group: str, panel: str) -> None:
        """dashboard → group → panel in the side menu, as a person clicks it; waits for the page."""
        menu = self.wait.until(EC.presence_of_element_located((By.ID, "sidebar")))
        dashboard_toggle = menu.find_element(
            By.XPATH, f".//li[contains(@class,'openstack-dashboard')]/a[normalize-space(.)='{dashboard}']")
        self._expand(dashboard_toggle)
        # the group inside this dashboard (Project and Admin both have a "Compute")
        dashboard_section = menu.find_element(By.CSS_SELECTOR, dashboard_toggle.get_attribute("data-target"))
        group_toggle = dashboard_section.find_element(
            By.XPATH, f".//li[contains(@class,'openstack-panel-group')]/a[normalize-space(.)='{group}']")
        self._expand(group_toggle)
        group_section = group_toggle.get_attribute("data-target")
        link = self.wait.until(EC.element_to_be_clickable(
            (By.XPATH, f"//*[@id='{group_section[1:]}']/a[normalize-space(.)='{panel}']")))
        href = link.get_attribute("href")
        link.click()
        self.wait.until(lambda d: d.current_url == href and d.execute_script(
            "return document.readyState") == "complete")

    # ---- what a page shows -----------------------------------------------------------------
    def breadcrumb(self) -> list[str]:
        return [e.text.strip() for e in self.driver.find_elements(By.CSS_SELECTOR, "ol.breadcrumb li")]

    def heading(self) -> str:
        return self.driver.find_element(By.CSS_SELECTOR, ".page-header h1").text.strip()

    def error_messages(self) -> list[str]:
        """Horizon's red alerts ("Error: Unable to retrieve ..."): an API behind the page failed."""
        return [e.text for e in self.driver.find_elements(By.CSS_SELECTOR, ".alert-danger") if e.is_displayed()]

    def table_rows(self, table_id: str) -> list[str]:
        """The display names of a Horizon data table's rows (its data-display attribute)."""
        table = self.wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, f"table#{table_id}")))
        return [row.get_attribute("data-display")
                for row in table.find_elements(By.CSS_SELECTOR, "tbody tr[data-display]")]


# ---- in the browser ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dashboard(settings):
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install chromium chromium-driver "
                    "(tests/debs; ./tests/run installs them)")
    profile = tempfile.mkdtemp(prefix="minstack-chromium-")  # a new, empty profile every run
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    SHOTS.mkdir(parents=True, exist_ok=True)
    # Both paths given: selenium uses Debian's driver and never tries to download one.
    # At its default level chromedriver logs every command with its arguments: the password typed
    # into the login form landed JSON-escaped in chromedriver.log (the secrets scan found it).
    service = Service(CHROMEDRIVER, log_output=str(SHOTS / "chromedriver.log"), service_args=["--log-level=WARNING"])
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield Dashboard(driver, f"http://{settings.service_host}/dashboard", settings.admin_password)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(dashboard, request):
    """The shared browser; whatever happens, the page a test ended on is kept (a failure's evidence)."""
    yield dashboard
    dashboard.shot(f"{request.node.name}-end")


def test_login_page_is_served_with_compressed_assets(browser):
    browser.open("/")
    browser.wait.until(EC.visibility_of_element_located((By.ID, "id_username")))
    browser.shot("01-login")
    assert browser.driver.current_url.startswith(browser.base + "/auth/login/")
    assert browser.driver.title == "Login - OpenStack Dashboard"
    # COMPRESS_OFFLINE: the page links the files `compress` wrote, and uWSGI served them
    sheets = browser.driver.execute_script(
        "return Array.from(document.styleSheets).filter(s => s.href)"
        ".map(s => [s.href, s.cssRules.length])")
    compressed = [(href, rules) for href, rules in sheets if "/dashboard/static/dashboard/css/" in href]
    assert compressed and all(rules > 0 for _, rules in compressed), sheets


def test_demo_signs_in_to_the_project_overview(browser):
    browser.as_user("demo")
    browser.shot("02-demo-overview")
    assert browser.driver.current_url == browser.base + "/project/"
    assert browser.heading() == "Overview"
    assert browser.error_messages() == []


def test_demo_opens_project_compute_instances(browser):
    browser.as_user("demo")
    browser.open_panel("Project", "Compute", "Instances")
    browser.shot("03-demo-instances")
    assert browser.breadcrumb() == ["Project", "Compute", "Instances"]
    assert browser.heading() == "Instances"
    browser.table_rows("instances")
    assert browser.error_messages() == []


def test_instances_table_lists_the_verify_instance(browser):
    """The instance the verify phase booted (demo project) is on the Instances page."""
    browser.as_user("demo")
    browser.open_panel("Project", "Compute", "Instances")
    rows = browser.table_rows("instances")
    browser.shot("04-demo-instances-table")
    assert VERIFY_SERVER in rows


def test_demo_opens_network_topology(browser):
    browser.as_user("demo")
    browser.open_panel("Project", "Network", "Network Topology")
    assert browser.breadcrumb() == ["Project", "Network", "Network Topology"]
    assert browser.heading() == "Network Topology"
    # The topology is drawn in the browser from Neutron's answer: wait for the demo network.
    try:
        browser.wait.until(lambda d: VERIFY_NETWORK in d.execute_script(
            "const svg = document.getElementById('topology_canvas'); return svg ? svg.textContent : ''"))
    finally:
        browser.shot("05-demo-network-topology")
    assert browser.error_messages() == []


@pytest.mark.parametrize("service, group, panel, heading", [
    ("s-proxy", "Object Store", "Containers", "Containers"),
    ("h-api", "Orchestration", "Stacks", "Stacks"),
])
def test_demo_opens_the_object_store_and_orchestration_panels(browser, settings, service, group, panel, heading):
    """Swift's panels come with Horizon once object-store is in the catalog; Heat's with heat-dashboard."""
    if not settings.is_enabled(service):
        pytest.fail(f"tests/functional/localrc does not enable {service}")
    browser.as_user("demo")
    browser.open_panel("Project", group, panel)
    browser.shot(f"05b-demo-{group.lower().replace(' ', '-')}")
    assert browser.breadcrumb() == ["Project", group, panel]
    assert browser.heading() == heading
    assert browser.error_messages() == []


HORIZON_VOLUME = "minstack-horizon-volume"


@pytest.fixture
def demo_volume(settings):
    """A 1 GB volume of the demo project (made through the API, removed afterwards)."""
    if not settings.is_enabled("c-api"):
        pytest.fail("tests/functional/localrc does not enable c-api")
    from minstack import identity
    demo = identity.user_connection(settings, "demo", "demo")
    for old in demo.block_storage.volumes(name=HORIZON_VOLUME):
        demo.block_storage.delete_volume(old)
        demo.block_storage.wait_for_delete(old, wait=120)
    volume = demo.block_storage.create_volume(name=HORIZON_VOLUME, size=1)
    demo.block_storage.wait_for_status(volume, status="available", failures=["error"], wait=120)
    yield volume
    demo.block_storage.delete_volume(volume)
    demo.block_storage.wait_for_delete(volume, wait=120)


def test_demo_opens_project_volumes_and_sees_a_volume(browser, demo_volume):
    """Project → Volumes → Volumes lists the demo project's volume (Cinder on RBD behind it)."""
    browser.as_user("demo")
    browser.open_panel("Project", "Volumes", "Volumes")
    rows = browser.table_rows("volumes")
    browser.shot("05c-demo-volumes")
    assert browser.breadcrumb() == ["Project", "Volumes", "Volumes"]
    assert browser.heading() == "Volumes"
    assert HORIZON_VOLUME in rows
    assert browser.error_messages() == []


def test_demo_signs_out(browser):
    browser.as_user("demo")
    browser.sign_out()
    browser.shot("06-signed-out")
    assert browser.user() is None
    # the session is really gone: a project page sends the browser back to the login form
    browser.open("/project/")
    browser.wait.until(EC.visibility_of_element_located((By.ID, "id_username")))
    assert browser.driver.current_url.startswith(browser.base + "/auth/login/")


def test_admin_opens_admin_compute_hypervisors(browser):
    browser.as_user("admin")
    browser.open_panel("Admin", "Compute", "Hypervisors")
    browser.shot("07-admin-hypervisors")
    assert browser.breadcrumb() == ["Admin", "Compute", "All Hypervisors"]
    assert browser.heading() == "All Hypervisors"
    browser.table_rows("hypervisors")
    assert browser.error_messages() == []


def test_hypervisors_table_lists_this_host(browser):
    browser.as_user("admin")
    browser.open_panel("Admin", "Compute", "Hypervisors")
    rows = browser.table_rows("hypervisors")
    browser.shot("08-admin-hypervisors-table")
    assert socket.gethostname() in rows


def test_a_wrong_password_is_refused(browser, settings):
    if browser.user() is not None:
        browser.sign_out()
    browser.password, right = settings.admin_password + "-wrong", settings.admin_password
    try:
        with pytest.raises(AssertionError, match="Invalid credentials"):
            browser.sign_in("demo")
    finally:
        browser.password = right
    browser.shot("09-wrong-password")
    assert browser.user() is None
