"""Tempest: installed into its own venv, a workspace at $DEST/tempest, tempest.conf for this stack.

As in DevStack, ./stack.py installs and configures Tempest but does not run it:
``tools/tempest-smoke.sh`` runs the smoke set (as the stack user, in the workspace).

- Tempest gets its own venv ($DATA_DIR/tempest/venv, root-owned like the
  services' one), from files/requirements/tempest-2026.2-lock.txt: its
  dependencies (paramiko, stestr, cliff, ...) never move the services' pins.
- The workspace ($DEST/tempest, owned by the stack user) comes from
  ``tempest init``: .stestr.conf, the stestr repository, the lock directory.
  The workspace registry goes to $DATA_DIR/tempest/workspace.yaml rather than
  the stack user's home.
- etc/exclude-list.txt in the workspace names the tests tools/tempest-smoke.sh
  leaves out, each with its reason: none today (the offline test image runs
  what CirrOS runs).  etc/expected-skips.txt names the tests Tempest may skip
  here, each with its reason (no Cinder, no Swift, one host, ML2/OVN); the
  script fails on any other skip.
- tempest.conf ($TEMPEST_CONFIG, default $DEST/tempest/etc/tempest.conf,
  root:stack 0640: it holds the admin password) is rendered from
  files/templates/tempest/tempest.conf.j2 with what this cloud really has,
  looked up through its APIs: the uploaded image, DevStack's small flavors,
  the public network, neutron's extensions, nova's highest microversion.
  local.conf ``[[test-config|$TEMPEST_CONFIG]]`` sections are merged into it
  (ctx.template merges only post-config sections, so this phase does both).
- With Heat (h-api), heat-tempest-plugin (in the lock, so in the venv whatever
  is enabled) gets tempest.conf's [heat_plugin], and the workspace gets
  etc/orchestration-exclude-list.txt and etc/orchestration-expected-skips.txt
  for ``tools/tempest-smoke.sh --orchestration``: what this stack cannot run
  (no Zaqar, Aodh, Octavia; no image with Heat's agents; the neutron extensions
  Heat's resource types need; user-data on the offline test image), and what
  may skip, each with its reason.
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
import sys
from pathlib import Path

from minstack import catalogue, identity, images, postconfig, templates, testimage
from minstack.catalogue import DEMO
from minstack.errors import MinstackError
from minstack.paths import REQUIREMENTS
from minstack.phase import Phase, Step
from minstack.ssh import SSH_USER

FLAVOR = DEMO.flavor
FLAVOR_ALT = DEMO.flavor_alt
PRIVATE_NETWORK = DEMO.network
PRIVATE_SUBNET = DEMO.subnet
PUBLIC_NETWORK = DEMO.public_network
# local.conf sections merged into tempest.conf, in file order (the last value wins)
MERGED_PHASES = ("post-config", "test-config")


def state_dir(settings) -> Path:
    """Tempest's own data: its venv, the workspace registry, a copy of the test image."""
    return settings.data_dir / "tempest"


def venv(settings) -> Path:
    return state_dir(settings) / "venv"


def workspace(settings) -> Path:
    """Where DevStack keeps Tempest ($DEST/tempest); its etc/tempest.conf is $TEMPEST_CONFIG's default."""
    return settings.dest / "tempest"


def config_file(settings) -> Path:
    return Path(settings.config_files["TEMPEST_CONFIG"])


def exclude_list(settings) -> Path:
    """The tests tools/tempest-smoke.sh leaves out, each with its reason (tempest run --exclude-list)."""
    return workspace(settings) / "etc" / "exclude-list.txt"


def lock_file(release: str) -> Path:
    path = REQUIREMENTS / f"tempest-{release}-lock.txt"
    if not path.exists():
        raise MinstackError(f"no Tempest lock file for release {release}: {path}")
    return path


def orchestration_exclude_list(settings) -> Path:
    """The heat-tempest-plugin tests tools/tempest-smoke.sh --orchestration leaves out, each with its reason."""
    return workspace(settings) / "etc" / "orchestration-exclude-list.txt"


def orchestration_expected_skips(settings) -> Path:
    """The heat-tempest-plugin tests that may skip here, each with its reason."""
    return workspace(settings) / "etc" / "orchestration-expected-skips.txt"


def run_paths(settings) -> dict[str, str]:
    """What tools/tempest-smoke.sh needs to run Tempest for this localrc."""
    return {"TEMPEST_VENV": str(venv(settings)), "TEMPEST_WORKSPACE": str(workspace(settings)),
            "TEMPEST_CONFIG": str(config_file(settings)), "STACK_USER": settings.stack_user,
            "TEMPEST_LOG": str(settings.logdir / "tempest.log"),
            "TEMPEST_EXCLUDE_LIST": str(exclude_list(settings)),
            "TEMPEST_EXPECTED_SKIPS": str(expected_skips(settings)),
            "TEMPEST_ORCHESTRATION_EXCLUDE_LIST": str(orchestration_exclude_list(settings)),
            "TEMPEST_ORCHESTRATION_EXPECTED_SKIPS": str(orchestration_expected_skips(settings))}


def expected_skips(settings) -> Path:
    """The tests Tempest may skip on this stack, each with its reason; tools/tempest-smoke.sh fails on
    any other skip."""
    return workspace(settings) / "etc" / "expected-skips.txt"


def merge_entries(settings, path: Path) -> list[tuple[str, str, str]]:
    """local.conf [[post-config|...]] and [[test-config|...]] entries aimed at path, in file order."""
    return [(e.section, e.key, e.value) for e in settings.post_config
            if e.phase in MERGED_PHASES and str(e.target) == str(path)]


def render_config(settings, **lookups) -> str:
    """tempest.conf's text: the template with this cloud's values, then local.conf's sections merged."""
    content = templates.render("tempest/tempest.conf.j2", settings,
                               service_available=catalogue.tempest_available(settings), **lookups)
    merges = merge_entries(settings, config_file(settings))
    return postconfig.merge_ini(content, merges) if merges else content


def image_copy(settings, image) -> Path:
    return state_dir(settings) / "images" / f"{image.name}.{image.disk_format}"


def boot_images(conn, settings) -> tuple[object, object, dict]:
    """(image, alternate image, record) among those minstack uploaded (the alternate is the second one,
    or the first again, as DevStack does with one image)."""
    uploaded = images.uploaded(settings)
    if not uploaded:
        raise MinstackError("no bootable image was uploaded (see phases/image.log)")
    found = [conn.image.find_image(record["name"], ignore_missing=False) for record in uploaded[:2]]
    return found[0], found[-1], uploaded[0]


def fitting_flavor(conn, name: str, image):
    """The flavor, refused if the image cannot boot in it (RAM, disk)."""
    flavor = conn.compute.find_flavor(name, ignore_missing=False)
    disk_bytes = flavor.disk * 1024 ** 3
    too_small = (flavor.ram < (image.min_ram or 0) or flavor.disk < (image.min_disk or 0)
                 or (image.virtual_size and disk_bytes and disk_bytes < image.virtual_size))
    if too_small:
        raise MinstackError(f"flavor {name} ({flavor.ram} MB, {flavor.disk} GB) is too small for image "
                            f"{image.name} (min_ram {image.min_ram} MB, virtual size {image.virtual_size} bytes)")
    return flavor


def compute_max_microversion(conn) -> str:
    """The highest compute API microversion this nova serves (from its version document)."""
    data = conn.compute.get_endpoint_data()
    if not data or not data.max_microversion:
        raise MinstackError("nova's API did not report its microversions")
    major, minor = data.max_microversion[:2]
    return f"{major}.{minor}"


def user_data_runs(settings) -> bool:
    """Whether the image Tempest and Heat's tests boot runs a user-data script: minstack's offline test
    image does not (CirrOS and cloud images do)."""
    uploaded = images.uploaded(settings)
    return not (uploaded and uploaded[0].get("offline"))


def why_guests_cannot_signal(settings) -> str | None:
    """Why a guest's user-data script could not call Heat back (None: it can): the image runs no
    script, or Heat's URLs name a loopback address, which in a guest is the guest itself."""
    if ipaddress.ip_address(str(settings.service_host)).is_loopback:
        return (f"SERVICE_HOST is {settings.service_host}: heat_metadata_server_url and the signal URLs "
                "name the host's loopback, which a guest cannot reach")
    if not user_data_runs(settings):
        return "the image is minstack's offline test image, which runs no user-data script"
    return None


def orchestration_lists(ctx) -> list:
    """The orchestration exclude list and expected skips, for this neutron and this image."""
    s = ctx.settings
    conn = identity.admin_connection(s)
    extensions = sorted(e.alias for e in conn.network.extensions())
    owned = dict(owner="root", group=s.stack_user, mode=0o644)
    return [ctx.template("tempest/orchestration-exclude-list.txt.j2", orchestration_exclude_list(s), **owned,
                         network_extensions=extensions, no_guest_signal=why_guests_cannot_signal(s)),
            ctx.template("tempest/orchestration-expected-skips.txt.j2", orchestration_expected_skips(s), **owned)]


def lookups(ctx) -> dict:
    """Everything tempest.conf takes from the running cloud."""
    s = ctx.settings
    conn = identity.admin_connection(s)
    image, image_alt, record = boot_images(conn, s)
    public = conn.network.find_network(PUBLIC_NETWORK, ignore_missing=False)
    if not public.is_router_external:
        raise MinstackError(f"network {PUBLIC_NETWORK} is not external")
    # the offline test image boots as tested only with its glance properties (machine type pc, ...)
    properties = testimage.image_properties() if record.get("offline") else {}
    values = {
        "workspace": workspace(s),
        "image_ref": image.id,
        "image_ref_alt": image_alt.id,
        "image_ssh_user": SSH_USER,
        "img_file": image_copy(s, image),
        "img_disk_format": image.disk_format,
        "img_properties": properties,
        "flavor_ref": fitting_flavor(conn, FLAVOR, image).id,
        "flavor_ref_alt": fitting_flavor(conn, FLAVOR_ALT, image_alt).id,
        "fixed_network_name": PRIVATE_NETWORK,
        "fixed_subnet_name": PRIVATE_SUBNET,
        "public_network_id": public.id,
        "floating_network_name": PUBLIC_NETWORK,
        "network_extensions": sorted(e.alias for e in conn.network.extensions()),
        "compute_max_microversion": compute_max_microversion(conn),
        "dashboard_url": f"http://{s.service_host}/dashboard/",
    }
    ctx.log.info("tempest.conf: image %s, flavors %s/%s, public network %s, compute microversion up to %s, "
                 "%d network extensions", image.name, values["flavor_ref"], values["flavor_ref_alt"], public.id,
                 values["compute_max_microversion"], len(values["network_extensions"]))
    return values


class Tempest(Phase):
    def steps(self, ctx):
        s = ctx.settings
        env_dir, ws, conf = venv(s), workspace(s), config_file(s)
        python, tempest = env_dir / "bin" / "python", env_dir / "bin" / "tempest"
        lock = lock_file(s.openstack_release)
        fingerprint = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
        # as phases/venv.py: uv from minstack's own venv, its cache outside DATA_DIR (warm after --clean)
        env = {"UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", "/var/cache/minstack/uv"),
               "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}

        def uv() -> str:
            return str(Path(sys.executable).parent / "uv")

        registry = state_dir(s) / "workspace.yaml"

        def init_workspace():
            ctx.ensure_dir(state_dir(s), owner=s.stack_user)
            # TMPDIR: the registry's lock goes to <state>/tempest-lock, not to a /tmp/tempest-lock
            # that another user's tempest may own
            as_stack = dict(user=s.stack_user, cwd=state_dir(s), env={"TMPDIR": str(state_dir(s))})
            if (ws / ".stestr.conf").exists():  # made by an init that stopped before registering it
                ctx.sh.run([tempest, "workspace", "register", "--workspace-path", registry,
                            "--name", "minstack", "--path", ws], **as_stack)
                return
            if ws.exists() and any(ws.iterdir()):
                raise MinstackError(f"{ws} exists and is not a Tempest workspace (no .stestr.conf); "
                                    "move it away and stack again")
            # --config-dir: the samples Tempest ships (<venv>/etc/tempest), instead of a
            # ~/.tempest/etc it would make in the stack user's home; the registry goes to
            # <state>/workspace.yaml for the same reason
            ctx.sh.run([tempest, "init", "--config-dir", env_dir / "etc" / "tempest",
                        "--workspace-path", registry, "--name", "minstack", ws], **as_stack)

        def image_missing():
            """(connection, image, its copy) when the copy is not there whole."""
            conn = identity.admin_connection(s)
            image, _, _ = boot_images(conn, s)
            target = image_copy(s, image)
            if target.exists() and target.stat().st_size == image.size:
                return None
            return conn, image, target

        def copy_image(seen):
            """Scenario tests upload an image from [scenario] img_file: the one this stack boots."""
            conn, image, target = seen
            ctx.ensure_dir(target.parent, owner=s.stack_user)
            partial = target.with_name(target.name + ".part")
            conn.image.download_image(image, output=str(partial), stream=True)
            partial.replace(target)
            ctx.log.info("copied image %s (%d bytes) to %s", image.name, target.stat().st_size, target)

        def config():
            wanted = [ctx.copy_of(conf, render_config(s, **lookups(ctx)), owner="root", group=s.stack_user,
                                  mode=0o640)]
            if not conf.parent.exists():  # $TEMPEST_CONFIG elsewhere than the workspace
                wanted.insert(0, ctx.directory(conf.parent, owner=s.stack_user))
            return wanted

        def install():
            ctx.sh.run([uv(), "pip", "install", "--python", python, "--compile-bytecode", "-r", lock], env=env)

        def create_venv():
            ctx.sh.run([uv(), "venv", "--allow-existing", "--python", "/usr/bin/python3", "--seed", env_dir],
                       env=env)
            install()

        orchestration = []
        if s.is_enabled("h-api"):
            orchestration.append(ctx.files_step(
                "orchestration lists", f"{orchestration_exclude_list(s)} and {orchestration_expected_skips(s)}: the "
                "heat-tempest-plugin tests tools/tempest-smoke.sh --orchestration leaves out or may skip, and why",
                lambda: orchestration_lists(ctx)))

        return [
            # checked on the file, not recorded: a venv removed by hand comes back whole
            Step("venv", create_venv, f"create {env_dir} (Tempest's own venv) and install {lock.name}",
                 check=tempest.exists),
            Step("install", install, f"install Tempest from {lock.name} (again when it changes)",
                 once_key=fingerprint),
            Step("workspace", init_workspace, f"tempest init {ws}",
                 check=lambda: (ws / ".stestr.conf").exists() and registry.exists()),
            Step("image copy", copy_image, f"the test image's file under {state_dir(s) / 'images'} "
                                           "([scenario] img_file)", observe=image_missing),
            ctx.files_step("config", f"{conf} from tempest/tempest.conf.j2 (+ local.conf test-config)", config),
            ctx.files_step("exclude list", f"{exclude_list(s)}: the tests tools/tempest-smoke.sh leaves out, and "
                           "why (none)", lambda: [ctx.template("tempest/exclude-list.txt.j2", exclude_list(s),
                                                              owner="root", group=s.stack_user, mode=0o644)]),
            ctx.files_step("expected skips", f"{expected_skips(s)}: the tests Tempest may skip on this stack, and why",
                           lambda: [ctx.template("tempest/expected-skips.txt.j2", expected_skips(s), owner="root",
                                                 group=s.stack_user, mode=0o644)]),
            *orchestration,
        ]

    def summary(self, settings):
        lines = [("tempest", f"tools/tempest-smoke.sh   (workspace {workspace(settings)}, "
                             f"config {config_file(settings)})")]
        if settings.is_enabled("h-api"):
            lines.append(("orchestration tests", "tools/tempest-smoke.sh --orchestration   (heat-tempest-plugin)"))
        return lines

    def clean(self, ctx):
        s = ctx.settings
        for path in (workspace(s), state_dir(s), config_file(s)):
            if path.exists():
                ctx.sh.run(["rm", "-rf", "--one-file-system", str(path)])


PHASE = Tempest(name="tempest", requires=("accounts", "image", "network", "nova"))
