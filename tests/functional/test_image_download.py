"""The download path (IMAGE_URLS, DevStack's knob), fed by the image this suite serves on loopback.

tests/functional/localrc points IMAGE_URLS at http://127.0.0.1:8399/...; conftest's image_server
fixture serves minstack's test image there (image_server.py).  The stack must have downloaded that
file into files/cache and uploaded exactly it to Glance, under DevStack's name for it, and booted it.
That it was fetched once and checked against its SHA256SUMS is checked by test_zz_lifecycle once the
stack ran again (only a session that stacked saw the requests).
"""
from __future__ import annotations

import hashlib

import pytest

from minstack import images
from minstack.paths import CACHE


@pytest.fixture(scope="module")
def served(image_server):
    assert image_server, "tests/functional/localrc's IMAGE_URLS names no http://127.0.0.1 URL to serve"
    return image_server


def digest(path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def test_the_stack_boots_the_downloaded_image(served, test_image, settings):
    assert test_image["name"] == images.image_name(served.url) == "served-testimage"
    assert test_image["offline"] is False, "the stack built its own image instead of downloading"
    assert test_image["marker"] == "login:"  # what the stack waits for on a downloaded image's console


def test_the_download_is_cached_intact(served):
    cached = images.cached_path(served.url, CACHE)
    assert cached.exists(), f"{served.url} was not downloaded into {CACHE}"
    assert images.sha256_of(cached) == served.sha256
    assert not cached.with_name(cached.name + ".part").exists()


def test_glance_holds_exactly_the_downloaded_file(served, admin_conn, test_image):
    found = [i for i in admin_conn.image.images() if i.name == test_image["name"]]
    assert len(found) == 1, [i.name for i in admin_conn.image.images()]
    image = found[0]
    assert (image.status, image.disk_format, image.visibility) == ("active", "qcow2", "public")
    assert image.size == served.image.stat().st_size
    assert image.hash_algo == "sha512" and image.hash_value == digest(served.image, "sha512")
