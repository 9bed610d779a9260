"""The test image(s): IMAGE_URLS downloaded once into files/cache and uploaded to Glance.

When a download is impossible (no route to the publisher, as on hosts that reach
only package mirrors) or OFFLINE=True, minstack builds its own small CirrOS-like
image from distro packages (minstack/testimage.py) and says so.
"""
from __future__ import annotations

import json

from minstack import identity, images, testimage
from minstack.paths import CACHE
from minstack.phase import Phase, Step

CIRROS_MARKER = "login:"


class Image(Phase):
    def steps(self, ctx):
        s = ctx.settings
        work = s.data_dir / "images"
        wanted: list[tuple[images.ImageFile, dict]] = []

        def offline_image():
            path = testimage.build_test_image(CACHE, work, run=lambda argv: ctx.sh.output(argv, quiet=False))
            item = images.ImageFile(testimage.IMAGE_NAME, path, testimage.DISK_FORMAT,
                                    properties={**testimage.image_properties(), "min_ram": testimage.MIN_RAM_MB})
            return item, {"name": item.name, "marker": testimage.CONSOLE_MARKER, "offline": True}

        def fetch():
            wanted.clear()
            for url in ([] if s.offline else s.image_urls):
                try:
                    path = images.download(url, CACHE, ctx.log)
                except images.DownloadFailed as exc:
                    ctx.log.warning("%s; building minstack's offline test image instead", exc)
                    ctx.note(f"{exc}: using minstack's offline test image instead")
                    continue
                for item in images.files_to_upload(ctx.sh, path, images.image_name(url), work):
                    wanted.append((item, {"name": item.name, "marker": CIRROS_MARKER, "offline": False}))
            if not any(meta for _, meta in wanted if not meta["name"].endswith(("-kernel", "-ramdisk"))):
                wanted.append(offline_image())

        asked = [] if s.offline else list(s.image_urls)

        def upload():
            conn = identity.admin_connection(s)
            for item, _ in wanted:
                images.ensure_uploaded(conn, item, ctx.log)
            bootable = [{**meta, "asked": asked} for item, meta in wanted if item.disk_format not in ("aki", "ari")]
            ctx.write_file(images.record_file(s), json.dumps(bootable, indent=1) + "\n", mode=0o600)

        def current() -> bool:
            """The images uploaded for these IMAGE_URLS (and OFFLINE) are recorded and active in Glance."""
            recorded = images.uploaded(s)
            if not recorded or any(r.get("asked") != asked for r in recorded):
                return False
            conn = identity.admin_connection(s)
            return all(getattr(conn.image.find_image(r["name"]), "status", None) == "active" for r in recorded)

        return [
            Step("fetch", fetch, "download IMAGE_URLS into files/cache (or build the offline test image)",
                 check=current),
            Step("upload", upload, "upload to Glance (public) unless an active image of that name exists",
                 check=current),
        ]

    def summary(self, settings):
        names = [i["name"] + (" (built offline)" if i["offline"] else "") for i in images.uploaded(settings)]
        return [("images", ", ".join(names))] if names else []


PHASE = Image(name="image", requires=("glance", "accounts"), services=("g-api",), debs=("testimage",))
