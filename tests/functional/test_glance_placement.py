"""Glance and Placement under uWSGI: files, processes, ports, catalog, and real API calls.

Where Glance keeps image data follows GLANCE_USE_SWIFT in the suite's localrc: off, in its file
store ("local", $DATA_DIR/glance/images); on, in Swift ("swift": the container "glance" of the
service project's account) by default, and still in the file store when an upload asks for it.
Every test below runs either way and checks the store the setting says."""
from __future__ import annotations

import hashlib
import io
import json
import os
import urllib.error
import urllib.request

import openstack
import pytest
from keystoneauth1 import session as ks_session

from minstack import identity

SERVICES = {
    # project: (config dir, files in it, uWSGI ini, port, catalog name, catalog type)
    "glance": ("/etc/glance", ["glance-api.conf", "glance-api-paste.ini", "glance-api-uwsgi.ini"],
               "glance-api-uwsgi.ini", 9292, "glance", "image"),
    "placement": ("/etc/placement", ["placement.conf", "placement-api-uwsgi.ini"],
                  "placement-api-uwsgi.ini", 8778, "placement", "placement"),
}
PROJECTS = sorted(SERVICES)


def get(url: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"X-Auth-Token": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.mark.parametrize("project", PROJECTS)
def test_config_files_are_root_stack_0640(host, settings, project):
    etc, files, *_ = SERVICES[project]
    directory = host.file(etc)
    assert (directory.user, directory.group, directory.mode) == ("root", settings.stack_user, 0o750)
    for name in files:
        f = host.file(f"{etc}/{name}")
        assert (f.user, f.group, f.mode) == ("root", settings.stack_user, 0o640), name


def test_uwsgi_files_name_the_module_and_config_dir(host):
    glance = host.file("/etc/glance/glance-api-uwsgi.ini").content_string
    assert "module = glance.wsgi.api" in glance and "env = OS_GLANCE_CONFIG_DIR=/etc/glance" in glance
    placement = host.file("/etc/placement/placement-api-uwsgi.ini").content_string
    assert "module = placement.wsgi.api" in placement
    assert "env = OS_PLACEMENT_CONFIG_DIR=/etc/placement" in placement


def test_glance_paste_file_is_the_one_the_config_names(host):
    conf = host.file("/etc/glance/glance-api.conf").content_string
    assert "config_file = /etc/glance/glance-api-paste.ini" in conf
    assert "[composite:glance-api-keystone]" in host.file("/etc/glance/glance-api-paste.ini").content_string


def default_store(settings) -> str:
    return "swift" if settings.glance_use_swift else "local"


def test_glance_stores_follow_glance_use_swift(admin_conn, host, settings):
    stores = [store for store in admin_conn.image.stores() if not store.id.startswith("os_glance_")]
    conf = host.file("/etc/glance/glance-api.conf").content_string
    swift_store = host.file("/etc/glance/glance-swift-store.conf")
    if settings.glance_use_swift:
        assert sorted(store.id for store in stores) == ["local", "swift"]
        assert "[swift]" in conf and "swift_store_config_file = /etc/glance/glance-swift-store.conf" in conf
        assert (swift_store.user, swift_store.group, swift_store.mode) == ("root", settings.stack_user, 0o640)
        # the glance service user, by reference: no credentials in glance-api.conf's store options
        assert "user = service:glance" in swift_store.content_string
        assert "swift_store_key" not in conf and "swift_store_user" not in conf
    else:
        assert [store.id for store in stores] == ["local"]
        assert "[swift]" not in conf and not swift_store.exists
    assert [store.id for store in stores if store.is_default] == [default_store(settings)]


def test_glance_state_dirs_belong_to_stack(host, settings):
    for name in ("images", "os_glance_staging_store", "os_glance_tasks_store", "locks"):
        d = host.file(f"{settings.data_dir}/glance/{name}")
        assert d.is_directory and d.user == settings.stack_user, name


@pytest.mark.parametrize("project", PROJECTS)
def test_runs_as_stack_under_uwsgi_master_and_workers(host, settings, project):
    etc, _, ini, *_ = SERVICES[project]
    procs = [p for p in host.process.filter(comm="uwsgi") if f"{etc}/{ini}" in p.args]
    assert procs and {p.user for p in procs} == {settings.stack_user}
    assert len(procs) == 1 + settings.api_workers  # the master plus API_WORKERS workers


@pytest.mark.parametrize("project", PROJECTS)
def test_listens_on_service_host_only(host, settings, project):
    port = SERVICES[project][3]
    listening = [s for s in host.socket.get_listening_sockets() if s.rsplit(":", 1)[-1] == str(port)]
    assert listening == [f"tcp://{settings.service_host}:{port}"]


def test_glance_root_lists_the_image_api_versions(settings):
    status, body = get(f"http://{settings.service_host}:9292/")
    assert status == 300
    assert "CURRENT" in {v["status"] for v in body["versions"]}


def test_placement_root_answers_with_its_version(settings):
    status, body = get(f"http://{settings.service_host}:8778/")
    assert status == 200
    assert body["versions"][0]["id"] == "v1.0"


def test_placement_refuses_without_a_token(settings):
    status, _ = get(f"http://{settings.service_host}:8778/resource_providers")
    assert status == 401


def test_placement_lists_resource_providers_for_admin(admin_conn):
    response = admin_conn.placement.get("/resource_providers")
    assert response.status_code == 200
    assert isinstance(response.json()["resource_providers"], list)


@pytest.mark.parametrize("project", PROJECTS)
def test_catalog_has_all_three_endpoints(admin_conn, settings, project):
    *_, port, name, service_type = SERVICES[project]
    [service] = [s for s in admin_conn.identity.services(type=service_type) if s.name == name]
    endpoints = sorted((e.interface, e.url, e.region_id)
                       for e in admin_conn.identity.endpoints(service_id=service.id))
    url = f"http://{settings.service_host}:{port}"
    assert endpoints == [(i, url, identity.REGION) for i in ("admin", "internal", "public")]


@pytest.mark.parametrize("user", ["glance", "placement"])
def test_service_user_logs_in_to_project_service(settings, user):
    assert identity.can_log_in(settings, user, settings.service_password, "service")


@pytest.fixture
def demo_conn(settings):
    auth = identity.password_auth(settings, "demo", settings.admin_password, "demo")
    return openstack.connection.Connection(session=ks_session.Session(auth=auth), region_name=identity.REGION)


def upload(conn, image, data: bytes, how: str, store: str | None = None) -> None:
    """Put data into a queued image: one sized PUT, a chunked PUT, or the interoperable import; into
    the store named (None: Glance's default)."""
    headers = {"Content-Type": "application/octet-stream"}
    if store:
        headers["X-Image-Meta-Store"] = store
    if how == "sized":
        response = conn.image.put(f"/images/{image.id}/file", data=io.BytesIO(data), headers=headers)
        assert response.status_code == 204, response.text
    elif how == "chunked":
        # Transfer-Encoding: chunked, what a client streaming from a pipe sends: glance reads it
        # with uwsgi.chunked_read(), which only works under uWSGI's own HTTP parser.
        chunks = (data[i:i + 4096] for i in range(0, len(data), 4096))
        response = conn.image.put(f"/images/{image.id}/file", data=chunks, headers=headers)
        assert response.status_code == 204, response.text
    else:
        # glance-direct: staged under $DATA_DIR/glance/os_glance_staging_store, then imported
        # by a task on glance's own thread pool, so the image turns active a moment later.
        conn.image.stage_image(image, data=io.BytesIO(data))
        conn.image.import_image(image, method="glance-direct", stores=[store] if store else None)
        conn.image.wait_for_status(image, status="active", failures=["killed"], interval=0.5, wait=60)


def image_stores(conn, image) -> list[str]:
    """The stores Glance says hold the image's data (its "stores" property)."""
    return conn.image.get(f"/images/{image.id}").json()["stores"].split(",")


def glance_container(settings) -> dict[str, int]:
    """Swift's container "glance" as the glance service user (project service) sees it: object ->
    size (a chunked upload's manifest reports the size of all its segments)."""
    auth = identity.password_auth(settings, "glance", settings.service_password, "service")
    conn = openstack.connection.Connection(session=ks_session.Session(auth=auth), region_name=identity.REGION)
    try:
        return {obj.name: conn.object_store.get_object_metadata(obj, container="glance").content_length
                for obj in conn.object_store.objects("glance")}
    except openstack.exceptions.NotFoundException:
        return {}


def assert_stored(conn, settings, host, image, size: int, store: str) -> None:
    """The image's data is in store, and only there."""
    assert image_stores(conn, image) == [store]
    on_disk = host.file(f"{settings.data_dir}/glance/images/{image.id}")
    if store == "local":
        assert on_disk.user == settings.stack_user and on_disk.size == size
    else:
        assert not on_disk.exists
    if settings.glance_use_swift:
        assert glance_container(settings).get(image.id) == (size if store == "swift" else None)


def assert_gone(settings, host, image) -> None:
    assert not host.file(f"{settings.data_dir}/glance/images/{image.id}").exists
    if settings.glance_use_swift:  # the object, and a chunked upload's segments (<id>-00001, ...)
        assert not [name for name in glance_container(settings) if name.startswith(image.id)]


def test_the_test_image_is_in_the_default_store(admin_conn, settings, host, test_image):
    """The image the stack uploaded: with GLANCE_USE_SWIFT, in Swift (the stack must have had the
    setting when it uploaded it: an image already in the file store stays there)."""
    image = admin_conn.image.find_image(test_image["name"], ignore_missing=False)
    assert image.status == "active" and image.size > 0
    assert_stored(admin_conn, settings, host, image, image.size, default_store(settings))


def round_trip(conn, settings, host, how: str, store: str | None) -> None:
    """Upload random bytes as a raw image, check where they are, read them back, delete the image."""
    data = os.urandom(48 * 1024)
    image = conn.image.create_image(name=f"minstack-test-{how}-{store or 'default'}", disk_format="raw",
                                    container_format="bare", allow_duplicates=True)
    try:
        assert image.status == "queued"
        upload(conn, image, data, how, store)
        image = conn.image.get_image(image)
        assert image.status == "active" and image.size == len(data)
        assert image.hash_algo == "sha512" and image.hash_value == hashlib.sha512(data).hexdigest()
        assert_stored(conn, settings, host, image, len(data), store or default_store(settings))

        downloaded = conn.image.download_image(image).content
        assert hashlib.sha256(downloaded).hexdigest() == hashlib.sha256(data).hexdigest()
    finally:
        conn.image.delete_image(image, ignore_missing=True)
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.image.get_image(image.id)
    assert_gone(settings, host, image)


@pytest.mark.parametrize("how", ["sized", "chunked", "import"])
def test_image_round_trip(demo_conn, settings, host, how):
    """As the demo user, into Glance's default store: the file store, or Swift with GLANCE_USE_SWIFT."""
    round_trip(demo_conn, settings, host, how, None)


@pytest.mark.parametrize("how", ["sized", "import"])
def test_an_upload_can_ask_for_the_file_store(demo_conn, settings, host, how):
    """The file store stays enabled with GLANCE_USE_SWIFT: a PUT's X-Image-Meta-Store and an
    import's stores (openstack image import --store local) put the data there, not into Swift."""
    round_trip(demo_conn, settings, host, how, "local")
