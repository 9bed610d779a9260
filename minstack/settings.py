"""Typed, validated settings, from a localrc/local.conf and facts about the host.

load_settings() is pure: it reads files but changes nothing.  Every problem
it finds is collected, each naming the file and line it comes from (or the
default it is about), and raised as one ConfigError.

KEYS below is the one table of known settings: their type, default and
one-line doc.  localrc.example documents the same keys, and a unit test keeps
the two in step.
"""
from __future__ import annotations

import os
import re
import secrets
import stat
import urllib.parse
from dataclasses import dataclass, field, make_dataclass, replace
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping

from minstack import catalogue, plugins, services
from minstack.checkouts import (PROJECT_FILES, Checkout, check_ref, check_repo, is_git_tree, local_path,
                                 locked_distributions, variable_prefix)
from minstack.errors import ConfigError, Problem, did_you_mean
from minstack.hostinfo import HostFacts
from minstack.localrc import Localrc, PostConfig, ServiceOp, Setting, parse_localrc
from minstack.paths import REPO, REQUIREMENTS
from minstack.versions import canonical

KNOWN_RELEASES = ("2026.2",)
DEFAULT_IMAGE_URL = "https://github.com/cirros-dev/cirros/releases/download/0.6.3/cirros-0.6.3-x86_64-disk.img"
PASSWORD_KEYS = ("ADMIN_PASSWORD", "DATABASE_PASSWORD", "RABBIT_PASSWORD", "SERVICE_PASSWORD")
# DevStack's *_CONF keys: each project's config files, as the catalogue declares them.
CONFIG_FILE_KEYS = tuple(catalogue.config_file_defaults())
# The catalogue projects that may come from a git checkout: those with a distribution in the venv.
GIT_PROJECTS = tuple(p for p in catalogue.PROJECTS if p.distribution and p.supported)
# A checkout's keys: <PREFIX>_REPO, _BRANCH, _DIR (DevStack's names) and their kinds.
CHECKOUT_PARTS = {"REPO": "repo", "BRANCH": "ref", "DIR": "checkout_dir"}
# Kinds whose empty value means "not set" (None), not the default.
UNSET_WHEN_EMPTY = ("phase", "repo", "ref", "checkout_dir", "libs")
# local.conf phases minstack applies; the others are reported and ignored.
APPLIED_PHASES = ("post-config", "test-config")
# The file named in problems when there is no localrc at all.
NO_FILE = "localrc"


# ---- the table of known settings --------------------------------------------------------------
@dataclass(frozen=True)
class KeySpec:
    """One localrc key.  ``default`` is written as in localrc ("$DEST/data"
    refers to another key); None means computed, as the doc says."""

    name: str
    group: str
    kind: str
    default: str | None
    doc: str
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    field: str | None = None   # the Settings attribute (default: the key in lower case; "" for none)

    @property
    def attribute(self) -> str:
        return self.name.lower() if self.field is None else self.field


KEYS: dict[str, KeySpec] = {spec.name: spec for spec in (
    # network
    KeySpec("HOST_IP", "network", "address", None,
            "IPv4 address of this host the APIs listen on (default: the address of the default-route device)"),
    KeySpec("SERVICE_HOST", "network", "address", "$HOST_IP",
            "address clients and services use to reach the APIs; must be an address of this host"),
    KeySpec("BASE_SERVICES_HOST", "network", "address", "127.0.0.1",
            "address MariaDB, RabbitMQ (and epmd) and memcached listen on and the services connect to; "
            "127.0.0.1 keeps them off the network (nothing off this host uses them); $SERVICE_HOST "
            "opens them to other hosts, for a future compute node"),
    KeySpec("FIXED_RANGE", "network", "network", "10.0.0.0/22",
            "CIDR of the private (tenant) network; must not overlap a network the host uses"),
    KeySpec("FLOATING_RANGE", "network", "network", "172.24.4.0/24",
            "CIDR of the public network that floating IPs come from; routed through minstack's own bridge"),
    KeySpec("PUBLIC_NETWORK_GATEWAY", "network", "ip", None,
            "gateway address of the public network (default: the first host of FLOATING_RANGE)"),
    KeySpec("NOVNCPROXY_URL", "network", "url", "http://$SERVICE_HOST:6080/vnc_lite.html",
            "URL browsers open for instance consoles (nova's novncproxy_base_url); behind a port "
            "forward, the forwarded address"),
    # passwords
    KeySpec("ADMIN_PASSWORD", "passwords", "password", None, "password of the 'admin' cloud user"),
    KeySpec("DATABASE_PASSWORD", "passwords", "password", None,
            "secret each service's MariaDB account password is derived from (no root login over TCP)"),
    KeySpec("RABBIT_PASSWORD", "passwords", "password", None, "password of RabbitMQ's 'stackrabbit' user"),
    KeySpec("SERVICE_PASSWORD", "passwords", "password", None,
            "password of the service users (keystone, nova, glance, ...)"),
    # paths
    KeySpec("DEST", "paths", "dir", "/opt/stack", "where source trees, the venv, data and logs go"),
    KeySpec("DATA_DIR", "paths", "dir", "$DEST/data", "service data, the venv and minstack's own state"),
    KeySpec("LOGDIR", "paths", "dir", "$DEST/logs", "log files of minstack and of every service"),
    KeySpec("STACK_USER", "paths", "user", "stack", "unprivileged user the services run as"),
    # services
    KeySpec("ENABLED_SERVICES", "services", "services", None,
            "services to run (default: DevStack's default set, as far as minstack supports it)", field=""),
    KeySpec("OPENSTACK_RELEASE", "services", "release", "2026.2",
            "OpenStack release whose pinned versions are installed"),
    KeySpec("INSTALL_METHOD", "services", "install_method", "source",
            "how OpenStack is installed: source (pinned git trees in a venv)", choices=("source", "packages")),
    KeySpec("OFFLINE", "services", "bool", "False",
            "True: download nothing, use only what earlier runs cached"),
    # images
    KeySpec("IMAGE_URLS", "images", "urls", DEFAULT_IMAGE_URL,
            "comma-separated http(s):// or file:// URLs of images to upload to Glance"),
    KeySpec("GLANCE_USE_SWIFT", "images", "bool", "False",
            "True: Glance stores new images in Swift (needs enable_service swift); its file store stays "
            "for images already there and for uploads that ask for it (--store local)"),
    # performance
    KeySpec("LIBVIRT_TYPE", "performance", "choice", "auto",
            "auto (kvm only if a test guest really boots under KVM, else qemu), kvm or qemu", choices=("auto", "kvm", "qemu")),
    KeySpec("API_WORKERS", "performance", "int", "1", "worker processes per API service (1-64)",
            minimum=1, maximum=64),
    KeySpec("SERVICE_TIMEOUT", "performance", "int", "120", "seconds to wait for a service to come up",
            minimum=1, maximum=3600),
    # volumes: Cinder on minstack's one-node Ceph (phases/ceph.py, phases/cinder.py)
    KeySpec("CINDER_ENABLED_BACKENDS", "volumes", "backends", "ceph:ceph",
            "Cinder's volume backends, DevStack's TYPE:NAME list; minstack's type is ceph (RBD on its "
            "one-node Ceph), e.g. ceph:ceph or ceph:ceph-1,ceph:ceph-2; a bare ceph means ceph:ceph"),
    KeySpec("CEPH_LOOPBACK_DISK_SIZE", "volumes", "size", "10G",
            "size of the Ceph OSD's sparse block file in $DATA_DIR/ceph (K, M, G, T: powers of 1024); "
            "it grows up to this as volumes are written, so it must fit in DATA_DIR's free space; read "
            "when the OSD is made (a change needs ./unstack.py --clean)", minimum=2 * 2 ** 30),
    # debug
    KeySpec("MINSTACK_DEBUG_FAIL_PHASE", "debug", "phase", None,
            "make the named phase fail on purpose (to test resuming); empty: off; "
            "also read from the environment; PHASE/STEP fails that phase just before that step",
            field="fail_phase"),
    KeySpec("VERIFY_KEEP_INSTANCE", "debug", "bool", "True",
            "keep the test instance that verify boots, to poke at it afterwards"),
    # git checkouts (minstack/checkouts.py); each project's own keys follow below
    KeySpec("GIT_BASE", "git", "repo", "https://opendev.org",
            "where <PROJECT>_REPO defaults point: $GIT_BASE/openstack/<project>.git"),
    KeySpec("GIT_DEPTH", "git", "int", "0", "clone and fetch only this many commits (0: the whole history)",
            minimum=0, maximum=1000000),
    KeySpec("RECLONE", "git", "bool", "False",
            "True: fetch every checkout again and force it to its branch, discarding local changes"),
    KeySpec("ERROR_ON_CLONE", "git", "bool", "False",
            "True: refuse to clone; every checkout must already be in place"),
    KeySpec("LIBS_FROM_GIT", "git", "libs", "",
            "comma-separated libraries to install from git checkouts (e.g. oslo.log,python-novaclient)", field=""),
)}
# Each project's checkout (NOVA_REPO, NOVA_BRANCH, NOVA_DIR, ...), from the catalogue: Settings.checkouts.
KEYS.update({f"{variable_prefix(p.name)}_{part}": KeySpec(f"{variable_prefix(p.name)}_{part}", "git", kind, None, doc,
                                                           field="")
             for p in GIT_PROJECTS for part, kind, doc in (
                 ("REPO", "repo", f"git URL or local path to clone {p.name} from (default "
                                  f"$GIT_BASE/openstack/{p.name}.git)"),
                 ("BRANCH", "ref", f"branch, tag, sha or Gerrit ref of {p.name} to check out "
                                   "(default stable/$OPENSTACK_RELEASE)"),
                 ("DIR", "checkout_dir", f"where {p.name}'s tree is (default $DEST/{p.name}); alone: use that "
                                         "tree as it is"))})
# Each project's config files (KEYSTONE_CONF, NOVA_CONF, ...), from the catalogue: Settings.config_files.
KEYS.update({key: KeySpec(key, "paths", "file", default, f"config file ({default} by default)", field="")
             for key, default in catalogue.config_file_defaults().items()})


# What $KEY means in localrc before the file sets KEY, as DevStack's stackrc
# sets its defaults before it sources localrc.
DEFAULTS: dict[str, str] = {spec.name: spec.default for spec in KEYS.values() if spec.default is not None}


# ---- the result --------------------------------------------------------------------------------
class _SettingsBase:
    """Everything minstack needs to know, checked.

    The attributes are generated from KEYS (one per key, named as the key in lower
    case, or KeySpec.field), plus: source (the localrc, or None), enabled_services,
    config_files (KEYSTONE_CONF, NOVA_CONF, ... -> path), post_config (targets
    resolved to absolute paths), warnings and generated_secrets (the password keys
    this load generated).
    """

    def is_enabled(self, *names: str) -> bool:
        """True if any of the named services is enabled."""
        return any(name in self.enabled_services for name in names)

    def secret_values(self) -> list[str]:
        return [getattr(self, KEYS[key].attribute) for key in PASSWORD_KEYS]

    @property
    def venv(self) -> Path:
        return self.data_dir / "venv"

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "minstack"


Settings = make_dataclass("Settings", [
    ("source", object),
    *((spec.attribute, object, field(repr=spec.kind != "password")) for spec in KEYS.values() if spec.attribute),
    ("enabled_services", frozenset),
    ("config_files", Mapping),
    ("post_config", tuple),
    ("checkouts", tuple, field(default=())),
    ("plugins", tuple, field(default=())),             # loaded minstack plugins (minstack/plugins.py)
    ("unfetched_plugins", tuple, field(default=())),   # enable_plugin URLs not cloned yet
    ("warnings", tuple, field(default=())),
    ("generated_secrets", frozenset, field(default=frozenset())),
], bases=(_SettingsBase,), frozen=True)
Settings.__module__ = __name__


# ---- converters: text -> typed value, or ValueError("is not ...") -----------------------------
# The message continues the key's description, e.g. "HOST_IP=10.0.0.300 is not an IPv4 address".
_SYSTEM_DIRS = {"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc", "/root",
                "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/local", "/var", "/var/lib"}
_BOOLEANS = {"true": True, "yes": True, "1": True, "on": True,
             "false": False, "no": False, "0": False, "off": False}
_USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_PHASE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_. -]*)?")  # phase or phase/step


def _to_ip(text: str, spec: KeySpec) -> IPv4Address:
    try:
        address = ip_address(text)
    except ValueError:
        raise ValueError("is not an IPv4 address")
    if not isinstance(address, IPv4Address):
        raise ValueError("is an IPv6 address; minstack supports IPv4 only")
    return address


def _to_address(text: str, spec: KeySpec) -> str:
    """An address of this host, kept as text (it goes into URLs and config files)."""
    return str(_to_ip(text, spec))


def _to_network(text: str, spec: KeySpec) -> IPv4Network:
    if "/" not in text:
        raise ValueError("needs a prefix length, e.g. 10.0.0.0/22")
    try:
        network = ip_network(text)
    except ValueError:
        try:
            loose = ip_network(text, strict=False)
        except ValueError:
            raise ValueError("is not an IPv4 network in CIDR form (e.g. 10.0.0.0/22)")
        raise ValueError(f"has host bits set; did you mean {loose}?")
    if not isinstance(network, IPv4Network):
        raise ValueError("is an IPv6 network; minstack supports IPv4 only")
    if network.prefixlen > 29:
        raise ValueError("is too small; use a /29 or larger")
    return network


def _to_file(text: str, spec: KeySpec) -> Path:
    if not text.startswith("/"):
        raise ValueError("must be an absolute path")
    if any(char.isspace() or ord(char) < 32 for char in text):
        raise ValueError("must not contain whitespace or control characters")
    return _normalize(text)


def _to_dir(text: str, spec: KeySpec) -> Path:
    path = _to_file(text, spec)
    if str(path) in _SYSTEM_DIRS:
        raise ValueError("is a system directory; minstack fills and cleans it, so use a dedicated one "
                         "such as /opt/stack")
    return path


def _to_user(text: str, spec: KeySpec) -> str:
    if not _USER_NAME.fullmatch(text):
        raise ValueError("is not a valid user name")
    if text == "root":
        raise ValueError("must not be root: the services run as an unprivileged user")
    return text


def _to_password(text: str, spec: KeySpec) -> str:
    if text == "":
        raise ValueError("is empty; leave it unset to have one generated")
    if any(ord(char) < 32 or ord(char) == 127 for char in text):
        raise ValueError("contains a newline, NUL or other control character, which config files cannot hold")
    return text


def _to_release(text: str, spec: KeySpec) -> str:
    if text not in KNOWN_RELEASES:
        raise ValueError(f"is not usable: no pinned versions for release {text}; "
                         f"known: {', '.join(KNOWN_RELEASES)}")
    return text


def _to_choice(text: str, spec: KeySpec) -> str:
    value = text.lower()
    if value not in spec.choices:
        raise ValueError(f"is not one of {', '.join(spec.choices)}" + did_you_mean(value, spec.choices))
    return value


def _to_install_method(text: str, spec: KeySpec) -> str:
    value = _to_choice(text, spec)
    if value == "packages":
        raise ValueError("is not supported yet; use source")
    return value


def _to_bool(text: str, spec: KeySpec) -> bool:
    try:
        return _BOOLEANS[text.lower()]
    except KeyError:
        raise ValueError("is not True/False, yes/no or 1/0")


def _to_int(text: str, spec: KeySpec) -> int:
    try:
        number = int(text, 10)
    except ValueError:
        raise ValueError("is not a whole number")
    if not spec.minimum <= number <= spec.maximum:
        raise ValueError(f"must be between {spec.minimum} and {spec.maximum}")
    return number


def _to_urls(text: str, spec: KeySpec) -> tuple[str, ...]:
    urls = tuple(url.strip() for url in text.split(",") if url.strip())
    if not urls:
        raise ValueError("lists no URL")
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        ok = (parts.scheme in ("http", "https") and parts.netloc) or (parts.scheme == "file" and parts.path)
        if not ok or any(char.isspace() for char in url):
            raise ValueError(f"has an entry '{url}' that is not an http://, https:// or file:// URL")
    return urls


def _to_url(text: str, spec: KeySpec) -> str:
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(char.isspace() for char in text):
        raise ValueError("is not an http:// or https:// URL")
    return text


def _to_repo(text: str, spec: KeySpec) -> str:
    check_repo(text)
    return text.rstrip("/") if spec.name == "GIT_BASE" else text


def _to_ref(text: str, spec: KeySpec) -> str:
    check_ref(text)
    return text


def _to_libs(text: str, spec: KeySpec) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise ValueError(f"has an entry '{name}' that is not a distribution name")
    return names


_SIZE = re.compile(r"(\d+)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}


def _to_size(text: str, spec: KeySpec) -> int:
    """A size in bytes: 10G, 10240M, 10GiB (powers of 1024, as truncate and DevStack read them)."""
    found = _SIZE.fullmatch(text.strip())
    if not found:
        raise ValueError("is not a size such as 10G (K, M, G, T: powers of 1024)")
    size = int(found[1]) * _SIZE_UNITS[found[2].upper()]
    if spec.minimum is not None and size < spec.minimum:
        raise ValueError(f"is too small: at least {format_size(spec.minimum)}")
    return size


def format_size(size: int) -> str:
    """Bytes as localrc would write them: the largest unit that divides them (10737418240 -> 10G)."""
    for unit in ("T", "G", "M", "K"):
        if size % _SIZE_UNITS[unit] == 0:
            return f"{size // _SIZE_UNITS[unit]}{unit}"
    return str(size)


# Cinder backends DevStack knows (lib/cinder_backends) that minstack does not run, and why.
_OTHER_BACKENDS = {
    "lvm": "needs device-mapper and an iSCSI target in the kernel",
    "nfs": "needs the kernel's NFS client and an NFS server",
    "glusterfs": "needs a GlusterFS cluster and FUSE",
    "fake_gate": "is a fake",
    "ceph_iscsi": "needs the kernel's iSCSI initiator",
    "vmdk": "needs VMware vCenter",
}
_BACKEND_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _to_backends(text: str, spec: KeySpec) -> tuple[str, ...]:
    """DevStack's TYPE:NAME list -> the backends' names (each a cinder.conf section and
    volume_backend_name).  Only ceph: RBD on minstack's one-node Ceph needs no kernel part."""
    names: list[str] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        kind, _, name = entry.partition(":")
        name = name or kind  # DevStack: a bare TYPE is TYPE:TYPE
        if kind != "ceph":
            why = _OTHER_BACKENDS.get(kind)
            raise ValueError(f"has an entry '{entry}': "
                             + (f"{kind} {why}, which minstack does not provide" if why
                                else f"'{kind}' is not a backend type minstack knows")
                             + "; minstack supports ceph:<name> (RBD on its one-node Ceph), "
                               "e.g. CINDER_ENABLED_BACKENDS=ceph:ceph")
        if not _BACKEND_NAME.fullmatch(name):
            raise ValueError(f"has an entry '{entry}' whose name is not a word of letters, digits, ., _ or -")
        if name in names:
            raise ValueError(f"names the backend {name} twice")
        names.append(name)
    if not names:
        raise ValueError("lists no backend; e.g. CINDER_ENABLED_BACKENDS=ceph:ceph")
    return tuple(names)


def _to_phase(text: str, spec: KeySpec) -> str:
    if not _PHASE_NAME.fullmatch(text):
        raise ValueError("is not a phase name (or PHASE/STEP)")
    return text


CONVERTERS: dict[str, Callable[[str, KeySpec], object]] = {
    "ip": _to_ip, "address": _to_address, "network": _to_network, "file": _to_file, "dir": _to_dir, "user": _to_user,
    "password": _to_password, "release": _to_release, "choice": _to_choice,
    "install_method": _to_install_method, "bool": _to_bool, "int": _to_int, "urls": _to_urls,
    "url": _to_url, "phase": _to_phase, "repo": _to_repo, "ref": _to_ref, "checkout_dir": _to_file,
    "libs": _to_libs, "size": _to_size, "backends": _to_backends,
}


def _normalize(text: str) -> Path:
    """/opt//stack/../x -> /opt/x (without touching the filesystem)."""
    return Path("/" + os.path.normpath(text).lstrip("/"))


# ---- entry points ------------------------------------------------------------------------------
def load_settings(path: Path | None, host: HostFacts, secrets_file: Path | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from localrc/local.conf at path (None: all defaults), checked
    against the host.  Raises ConfigError listing every problem found."""
    environ = os.environ if environ is None else environ
    # $TOP_DIR is minstack's own directory, as DevStack's is devstack's (enable_plugin NAME $TOP_DIR/plugins/NAME)
    predefined = {**DEFAULTS, "TOP_DIR": str(REPO)}
    localrc = parse_localrc(Path(path), environ, predefined=predefined) if path is not None else None
    return _Loader(localrc, host, secrets_file, environ).load()


def save_generated_secrets(settings: Settings, secrets_file: Path) -> None:
    """Add the passwords this load generated to secrets_file (mode 0600).

    Does nothing when nothing was generated.  Lines already in the file stay.
    """
    if not settings.generated_secrets:
        return
    secrets_file = Path(secrets_file)
    if secrets_file.exists():
        kept = [line for line in secrets_file.read_text(encoding="utf-8").splitlines()
                if line.partition("=")[0].strip() not in settings.generated_secrets]
    else:
        kept = ["# Passwords minstack generated for this cloud. Keep this file private (mode 0600)."]
    added = [f"{key}={getattr(settings, key.lower())}" for key in PASSWORD_KEYS
             if key in settings.generated_secrets]
    _write_private(secrets_file, "\n".join(kept + added) + "\n")


def _write_private(path: Path, content: str) -> None:
    """Replace path with content, atomically; the file is never readable by others."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def read_secrets_file(path: Path) -> tuple[dict[str, Setting], list[Problem], list[Problem]]:
    """KEY=value lines of a secrets file -> ({key: Setting}, errors, warnings).

    A missing file is fine (nothing generated yet).
    """
    file = str(path)
    found: dict[str, Setting] = {}
    errors: list[Problem] = []
    warnings: list[Problem] = []
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return found, errors, warnings
    except (OSError, UnicodeDecodeError) as error:
        return found, [Problem(file, None, f"cannot read the secrets file: {error}")], warnings
    if stat.S_IMODE(mode) & 0o077:
        warnings.append(Problem(file, None, f"is readable by other users; run: chmod 600 {file}"))
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, equals, value = line.partition("=")
        key = key.strip()
        if not equals:
            errors.append(Problem(file, number, "expected KEY=value"))
        elif key not in PASSWORD_KEYS:
            warnings.append(Problem(file, number, f"unknown key {key} in the secrets file (ignored)"))
        else:
            found[key] = Setting(key, value, file, number)
    return found, errors, warnings


# ---- the loader --------------------------------------------------------------------------------
_DEFAULT_REFERENCE = re.compile(r"\$(\w+)")
_TARGET_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_VALUE_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_]\w*)\}|([A-Za-z_]\w*))")


class _Loader:
    """Resolves KEYS in table order, then checks how the values fit together.

    self.text holds each key's final text (as written, or the default);
    self.value the typed value of each key that passed its checks.  A key whose
    default refers to a failed key is skipped: the first problem is enough.
    """

    # Keys the environment may set when localrc does not (debug knobs for test harnesses).
    FROM_ENVIRONMENT = ("MINSTACK_DEBUG_FAIL_PHASE",)

    def __init__(self, localrc: Localrc | None, host: HostFacts, secrets_file: Path | None,
                 environ: Mapping[str, str]):
        self.localrc = localrc
        self.environ = environ
        self.file = str(localrc.path) if localrc else NO_FILE
        self.written: dict[str, Setting] = dict(localrc.values) if localrc else {}
        self.host = host
        self.secrets_file = Path(secrets_file) if secrets_file else None
        self.text: dict[str, str] = {}
        self.value: dict[str, object] = {}
        self.from_secrets: dict[str, Setting] = {}
        self.generated: set[str] = set()
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = list(localrc.warnings) if localrc else []

    def load(self) -> Settings:
        self._warn_unknown_keys()
        self._read_secrets()
        for spec in KEYS.values():
            self._resolve(spec)
        self._check_ranges()
        self._check_local_addresses()
        self._check_config_files()
        resolved = self._plugins()
        enabled = self._services()
        self._check_glance_store(enabled)
        self._check_volume_space(enabled)
        post_config = self._post_config()
        checkouts = self._checkouts()
        self.errors.sort(key=self._reading_order)
        self.warnings.sort(key=self._reading_order)
        if self.errors:
            raise ConfigError(self.errors)
        return self._settings(enabled, post_config, checkouts, resolved)

    def _reading_order(self, problem: Problem) -> tuple:
        """localrc's problems first, each file's by line (those without a line first)."""
        return problem.file != self.file, problem.file, problem.line or 0

    # -- where a value comes from, and how problems name it --
    def _is_written(self, key: str) -> bool:
        """Set in localrc.  An empty value means "the default", as with DevStack's
        ${VAR:-default}, except for passwords, where it is an error."""
        setting = self.written.get(key)
        return setting is not None and (setting.value != "" or KEYS[key].kind == "password")

    def _where(self, key: str) -> tuple[str, int | None]:
        if self._is_written(key):
            return self.written[key].file, self.written[key].line
        if key in self.from_secrets:
            return self.from_secrets[key].file, self.from_secrets[key].line
        return self.file, None

    def _subject(self, key: str) -> str:
        """How a message names key: KEY=value, KEY (default value), or just
        KEY for passwords, which are never shown."""
        if KEYS[key].kind == "password":
            return key
        text = self.text.get(key, "")
        if self._is_written(key):
            return f"{key}={_show(text)}"
        if key in self.FROM_ENVIRONMENT and self.environ.get(key):
            return f"{key}={_show(text)} (from the environment)"
        return f"{key} (default {_show(text)})"

    def _error(self, key: str, message: str) -> None:
        file, line = self._where(key)
        self.errors.append(Problem(file, line, message))

    # -- one key --
    def _resolve(self, spec: KeySpec) -> None:
        if spec.kind == "services":
            return  # localrc turned it into service ops
        text = self._text(spec)
        if text is None:
            return  # its default depends on a key that failed (already reported)
        self.text[spec.name] = text
        if text == "" and spec.kind in UNSET_WHEN_EMPTY:
            self.value[spec.name] = None
            return
        try:
            self.value[spec.name] = CONVERTERS[spec.kind](text, spec)
        except ValueError as problem:
            self._error(spec.name, f"{self._subject(spec.name)} {problem}")

    def _text(self, spec: KeySpec) -> str | None:
        if self._is_written(spec.name):
            return self.written[spec.name].value
        if spec.kind == "password":
            return self._password_default(spec.name)
        if spec.name == "HOST_IP":
            return self._detected_host_ip()
        if spec.name in self.FROM_ENVIRONMENT and self.environ.get(spec.name):
            return self.environ[spec.name]
        if spec.name == "PUBLIC_NETWORK_GATEWAY":
            floating = self.value.get("FLOATING_RANGE")
            return str(next(floating.hosts())) if floating else None
        if spec.default is None:
            return ""
        return self._expand_default(spec.default)

    def _expand_default(self, default: str) -> str | None:
        names = _DEFAULT_REFERENCE.findall(default)
        if any(name not in self.value for name in names):
            return None
        return _DEFAULT_REFERENCE.sub(lambda match: self.text[match[1]], default)

    def _detected_host_ip(self) -> str | None:
        if self.host.default_ip:
            return self.host.default_ip
        self.errors.append(Problem(self.file, None, "HOST_IP is not set and this host has no default route "
                                                    "to find it from; set HOST_IP to this host's IPv4 address"))
        return None

    # -- passwords --
    def _read_secrets(self) -> None:
        if self.secrets_file is None:
            return
        found, errors, warnings = read_secrets_file(self.secrets_file)
        self.from_secrets = found
        self.errors += errors
        self.warnings += warnings

    def _password_default(self, key: str) -> str:
        if key in self.from_secrets:
            return self.from_secrets[key].value
        self.generated.add(key)
        return secrets.token_urlsafe(18)

    # -- unknown keys --
    def _warn_unknown_keys(self) -> None:
        libraries = self._library_keys()
        for key, setting in self.written.items():
            if key not in KEYS and key not in libraries:
                hint = ("; a library's checkout keys count only when LIBS_FROM_GIT names it"
                        if key.rpartition("_")[2] in CHECKOUT_PARTS else did_you_mean(key, KEYS))
                self.warnings.append(Problem(setting.file, setting.line, f"unknown setting {key} (ignored)" + hint))

    def _library_keys(self) -> dict[str, str]:
        """The checkout keys of the libraries LIBS_FROM_GIT names (OSLOLOG_REPO, ...) -> their kind."""
        written = self.written.get("LIBS_FROM_GIT")
        names = [name.strip() for name in (written.value if written else "").split(",") if name.strip()]
        return {f"{variable_prefix(name)}_{part}": kind for name in names for part, kind in CHECKOUT_PARTS.items()}

    # -- how values fit together --
    def _check_ranges(self) -> None:
        fixed = self.value.get("FIXED_RANGE")
        floating = self.value.get("FLOATING_RANGE")
        gateway = self.value.get("PUBLIC_NETWORK_GATEWAY")
        if fixed and floating and fixed.overlaps(floating):
            self._error(self._last_written("FIXED_RANGE", "FLOATING_RANGE"),
                        f"{self._subject('FIXED_RANGE')} overlaps {self._subject('FLOATING_RANGE')}; "
                        "the private and the public network must not share addresses")
        if floating and gateway:
            self._check_gateway(floating, gateway)
        for key in ("FIXED_RANGE", "FLOATING_RANGE"):
            if self.value.get(key):
                self._check_free(key, other=fixed if key == "FLOATING_RANGE" else floating)

    def _check_gateway(self, floating: IPv4Network, gateway: IPv4Address) -> None:
        subject = self._subject("PUBLIC_NETWORK_GATEWAY")
        if gateway not in floating:
            problem = f"is outside FLOATING_RANGE {floating}"
        elif gateway == floating.network_address:
            problem = f"is the network address of FLOATING_RANGE {floating}"
        elif gateway == floating.broadcast_address:
            problem = f"is the broadcast address of FLOATING_RANGE {floating}"
        else:
            return
        self._error(self._last_written("PUBLIC_NETWORK_GATEWAY", "FLOATING_RANGE"), f"{subject} {problem}")

    def _check_free(self, key: str, other: IPv4Network | None) -> None:
        """key's range must not overlap a route or address the host uses."""
        network = self.value[key]
        in_use = self.host.networks_in_use()
        clashes = [(used, dev, kind) for used, dev, kind in in_use if used.overlaps(network)]
        if not clashes:
            return
        described = ", ".join(f"{used.network_address} ({dev}: the host would lose it)" if kind == "dependency"
                              else f"{used} ({kind} on {dev or 'no device'})" for used, dev, kind in clashes)
        avoid = [used for used, _, _ in in_use] + ([other] if other else [])
        free = _free_range(network.prefixlen, avoid, near=IPv4Network(KEYS[key].default))
        hint = f"; pick a free range, e.g. {key}={free}" if free else ""
        self._error(key, f"{self._subject(key)} overlaps {described} already used by this host{hint}")

    def _last_written(self, *keys: str) -> str:
        """Of keys, the one written last in localrc (problems about how two
        values fit are reported there)."""
        return max(keys, key=lambda k: self.written[k].line if self._is_written(k) else 0)

    def _check_local_addresses(self) -> None:
        """Everything runs on this host, so HOST_IP and SERVICE_HOST must be its addresses."""
        local = self.host.local_ips()
        for key in ("HOST_IP", "SERVICE_HOST", "BASE_SERVICES_HOST"):
            address = self.value.get(key)
            if address is None or not local or not self._is_written(key):
                continue
            if str(address) not in local:
                self._error(key, f"{self._subject(key)} is not an address of this host "
                                 f"(it has {', '.join(sorted(local))}); minstack installs everything here")
        host_ip = self.value.get("HOST_IP")
        if host_ip is not None and ip_address(host_ip).is_loopback:
            file, line = self._where("HOST_IP")
            self.warnings.append(Problem(file, line, f"{self._subject('HOST_IP')} is a loopback address; "
                                                     "instances will not reach the APIs"))
        base = self.value.get("BASE_SERVICES_HOST")
        if base is not None and not ip_address(base).is_loopback:
            file, line = self._where("BASE_SERVICES_HOST")
            self.warnings.append(Problem(file, line, f"{self._subject('BASE_SERVICES_HOST')}: MariaDB, RabbitMQ, "
                                                     "epmd and memcached (which has no authentication) are "
                                                     "reachable from other hosts"))

    def _check_volume_space(self, enabled: frozenset[str]) -> None:
        """The OSD's sparse block file grows up to CEPH_LOOPBACK_DISK_SIZE as volumes are written:
        it must fit in what DATA_DIR's filesystem has free (plus what an existing file already holds)."""
        size, data_dir = self.value.get("CEPH_LOOPBACK_DISK_SIZE"), self.value.get("DATA_DIR")
        if size is None or data_dir is None or not ({"c-vol", "c-bak"} & enabled):
            return
        free = self.host.free_space(data_dir)
        if free is None:
            return
        # phases/ceph.py's Layout.block (a unit test keeps the two in step)
        room = free + self.host.allocated(data_dir / "ceph" / "osd" / "ceph-0.block")
        if size > room:
            fits = format_size(room // 2 ** 30 * 2 ** 30) if room >= KEYS["CEPH_LOOPBACK_DISK_SIZE"].minimum else ""
            self._error("CEPH_LOOPBACK_DISK_SIZE",
                        f"{self._subject('CEPH_LOOPBACK_DISK_SIZE')} does not fit: the filesystem holding "
                        f"DATA_DIR ({data_dir}) has {room / 2 ** 30:.1f} GiB free, and the Ceph OSD's sparse file "
                        "grows up to that size as volumes are written; "
                        + (f"set CEPH_LOOPBACK_DISK_SIZE={fits} or less, " if fits else "")
                        + "free some space, move DATA_DIR, or disable c-vol and c-bak")

    def _check_config_files(self) -> None:
        """A *_CONF may point anywhere, but some WSGI modules read only their own file name."""
        for key, (name, module) in catalogue.fixed_file_names().items():
            path = self.value.get(key)
            if path is not None and self._is_written(key) and path.name != name:
                self._error(key, f"{self._subject(key)}: {module} reads only a file named {name}; "
                                 f"keep that name (any directory works), e.g. {key}={path.parent / name}")

    # -- minstack plugins --
    def _plugins(self) -> plugins.Resolved:
        """Load the enable_plugin lines: their projects join the catalogue before the services
        resolve, and each line enables its plugin's services where it stands."""
        lines = self.localrc.plugins if self.localrc else []
        if not lines or "DEST" not in self.value:
            plugins.activate([])
            return plugins.Resolved()
        resolved = plugins.resolve(lines, base=self.localrc.path.parent, dest=self.value["DEST"])
        plugins.activate(resolved.plugins)
        self.errors += resolved.errors
        self.warnings += resolved.warnings
        enables = [(line.file, line.line, services) for line, services in resolved.builtin]
        enables += [(plugin.file, plugin.line, plugin.services) for plugin in resolved.plugins if plugin.services]
        ops = self.localrc.service_ops
        for file, line, names in enables:  # in reading order: a disable_service after the line wins
            at = next((i for i, op in enumerate(ops) if op.file == file and op.line > line), len(ops))
            ops.insert(at, ServiceOp("enable", tuple(names), file, line))
        return resolved

    # -- services --
    def _services(self) -> frozenset[str]:
        ops = self.localrc.service_ops if self.localrc else []
        enabled, unknown, not_there = services.resolve_services(ops, services.default_services())
        running, unsupported, ignored = services.check_support(enabled, ops, self.file)
        self.errors += unknown + unsupported
        self.warnings += not_there + ignored
        self.errors += services.check_requirements(running, ops, self.file)
        return running

    def _check_glance_store(self, enabled: frozenset[str]) -> None:
        """GLANCE_USE_SWIFT puts Glance's images in Swift: this host must run Swift's proxy."""
        if self.value.get("GLANCE_USE_SWIFT") and "s-proxy" not in enabled:
            self._error("GLANCE_USE_SWIFT", f"{self._subject('GLANCE_USE_SWIFT')} stores images in Swift, which "
                                            "is not enabled (s-proxy): add enable_service swift, or leave "
                                            "GLANCE_USE_SWIFT off")

    # -- git checkouts --
    def _checkouts(self) -> tuple[Checkout, ...]:
        """The projects whose REPO, BRANCH or DIR is set, then the libraries LIBS_FROM_GIT names."""
        found = [self._checkout(p.name, p.distribution) for p in GIT_PROJECTS
                 if any(self._is_written(f"{variable_prefix(p.name)}_{part}") for part in CHECKOUT_PARTS)]
        found += [self._checkout(name, name) for name in self._libraries()]
        return tuple(checkout for checkout in found if checkout is not None)

    def _libraries(self) -> list[str]:
        release = self.value.get("OPENSTACK_RELEASE")
        if not release:
            return []
        lock = REQUIREMENTS / f"{release}-lock.txt"
        locked = locked_distributions(lock)
        projects = {p.distribution: p for p in GIT_PROJECTS} | {p.name: p for p in GIT_PROJECTS}
        libraries = []
        for name in self.value.get("LIBS_FROM_GIT") or ():
            if name.upper() == "ALL":
                self._error("LIBS_FROM_GIT", "LIBS_FROM_GIT=ALL is not supported: name the libraries, "
                                             "e.g. LIBS_FROM_GIT=oslo.log,python-novaclient")
            elif name in projects:
                prefix = variable_prefix(projects[name].name)
                self._error("LIBS_FROM_GIT", f"LIBS_FROM_GIT names {name}, a service, not a library: set "
                                             f"{prefix}_REPO and {prefix}_BRANCH (or {prefix}_DIR) instead")
            elif canonical(name) not in locked:
                self._error("LIBS_FROM_GIT", f"LIBS_FROM_GIT names {name}, which is not in the {release} lock "
                                             f"({lock.name})" + did_you_mean(name, sorted(locked.values())))
            else:
                libraries.append(name)
        return libraries

    def _checkout_value(self, key: str, kind: str):
        """A checkout key's value (None: unset, or wrong and reported): a project's from KEYS, a library's here."""
        if key in KEYS:
            return self.value.get(key)
        setting = self.written.get(key)
        if setting is None or setting.value == "":
            return None
        try:
            return CONVERTERS[kind](setting.value, KeySpec(key, "git", kind, None, ""))
        except ValueError as problem:
            self.errors.append(Problem(setting.file, setting.line, f"{key}={_show(setting.value)} {problem}"))
            return None

    def _checkout_problem(self, key: str, message: str) -> None:
        setting = self.written.get(key)
        self.errors.append(Problem(setting.file if setting else self.file, setting.line if setting else None, message))

    def _checkout(self, name: str, distribution: str) -> Checkout | None:
        """One checkout from its keys, checked against the host before anything changes."""
        prefix = variable_prefix(name)
        keys = {part: f"{prefix}_{part}" for part in CHECKOUT_PARTS}
        written = {part: bool(self.written.get(key) and self.written[key].value) for part, key in keys.items()}
        repo, ref, tree = (self._checkout_value(keys[part], kind) for part, kind in CHECKOUT_PARTS.items())
        if any(written[part] and value is None for part, value in zip(CHECKOUT_PARTS, (repo, ref, tree))) \
                or "DEST" not in self.value or "GIT_BASE" not in self.value:
            return None  # already reported
        if tree is not None and not written["REPO"] and not written["BRANCH"]:
            if not any((tree / file).is_file() for file in PROJECT_FILES):
                self._checkout_problem(keys["DIR"], f"{keys['DIR']}={tree} is not a Python project to use in place "
                                                    f"(no {', '.join(PROJECT_FILES)}); set {keys['REPO']} too to "
                                                    "clone one there")
                return None
            return Checkout(name, distribution, "", "", tree)
        repo = repo or f"{self.value['GIT_BASE']}/openstack/{name}.git"
        ref = ref or f"stable/{self.value.get('OPENSTACK_RELEASE')}"
        tree = tree or self.value["DEST"] / name
        source = local_path(repo)
        repo_key = keys["REPO"] if written["REPO"] else "GIT_BASE"
        if source is not None and not source.exists():
            self._checkout_problem(repo_key, f"{repo_key}: {source} does not exist (the repository of {name})")
        elif not is_git_tree(tree) and tree.is_dir() and any(tree.iterdir()):
            self._checkout_problem(keys["DIR"] if written["DIR"] else repo_key,
                                   f"{tree} exists and is not a git checkout, so {name} cannot be cloned there; "
                                   f"move it away, or set only {keys['DIR']}={tree} to use it as it is")
        elif not is_git_tree(tree) and self.value.get("ERROR_ON_CLONE"):
            self._checkout_problem("ERROR_ON_CLONE", f"ERROR_ON_CLONE=True, but {name} is not in {tree} and would be "
                                                     f"cloned from {repo}; clone it there first")
        elif not is_git_tree(tree) and self.value.get("OFFLINE") and source is None:
            self._checkout_problem("OFFLINE", f"OFFLINE=True, but {name} is not in {tree} and cannot be cloned "
                                              f"from {repo} offline; set {keys['REPO']} to a local path")
        else:
            return Checkout(name, distribution, repo, ref, tree)
        return None

    # -- local.conf [[post-config|...]] --
    def _post_config(self) -> tuple[PostConfig, ...]:
        entries = []
        reported: set[tuple] = set()
        for entry in self.localrc.post_config if self.localrc else []:
            header = (entry.phase, entry.target, entry.header_line)
            if entry.phase not in APPLIED_PHASES:
                if header not in reported:
                    reported.add(header)
                    self.warnings.append(Problem(entry.file, entry.header_line, f"[[{entry.phase}|{entry.target}]]: "
                                                 f"minstack applies only {' and '.join(APPLIED_PHASES)} "
                                                 "sections; ignored"))
                continue
            target, problem = self._resolve_target(entry.target)
            if problem and header not in reported:
                reported.add(header)
                self.errors.append(Problem(entry.file, entry.header_line,
                                           f"[[{entry.phase}|{entry.target}]]: {problem}"))
            if target is None:
                continue
            entries.append(replace(entry, target=str(target), value=self._expand_ini_value(entry.value)))
        return tuple(entries)

    def _target_variables(self) -> dict[str, str]:
        variables = {key: str(self.value[key]) for key in CONFIG_FILE_KEYS if key in self.value}
        # DevStack's own docs write [[post-config|/$Q_PLUGIN_CONF_FILE]]: a relative path.
        if "Q_ML2_CONF_FILE" in variables:
            variables["Q_PLUGIN_CONF_FILE"] = variables["Q_ML2_CONF_FILE"].lstrip("/")
        return variables

    def _resolve_target(self, target: str) -> tuple[Path | None, str | None]:
        """$NOVA_CONF -> /etc/nova/nova.conf; an absolute path stays as it is.

        Returns (path, None), or (None, problem), or (None, None) when the
        variable's own setting failed (that is reported already)."""
        variables = self._target_variables()
        unknown = [m[1] or m[2] for m in _TARGET_VARIABLE.finditer(target) if (m[1] or m[2]) not in variables]
        if any(name in KEYS for name in unknown):
            return None, None
        if unknown:
            return None, (f"unknown config file variable ${unknown[0]}" + did_you_mean(unknown[0], variables)
                          + f"; known: {', '.join('$' + name for name in CONFIG_FILE_KEYS)}")
        path = _TARGET_VARIABLE.sub(lambda m: variables[m[1] or m[2]], target)
        if not path.startswith("/"):
            return None, "the target must be a config file variable such as $NOVA_CONF, or an absolute path"
        return _normalize(path), None

    def _expand_ini_value(self, value: str) -> str:
        """$NAME / ${NAME} naming a localrc setting is replaced by its value (as
        DevStack does); anything else, like oslo.config's $state_path, stays."""
        known = {key: setting.value for key, setting in self.written.items()}
        known.update(self.text)
        return _VALUE_VARIABLE.sub(lambda m: known.get(m[1] or m[2], m[0]), value)

    # -- the result --
    def _settings(self, enabled: frozenset[str], post_config: tuple[PostConfig, ...],
                  checkouts: tuple[Checkout, ...], resolved: plugins.Resolved) -> Settings:
        return Settings(
            source=self.localrc.path if self.localrc else None,
            **{spec.attribute: self.value[name] for name, spec in KEYS.items() if spec.attribute},
            enabled_services=enabled,
            config_files=MappingProxyType({key: self.value[key] for key in CONFIG_FILE_KEYS}),
            post_config=post_config,
            checkouts=checkouts,
            plugins=tuple(resolved.plugins),
            unfetched_plugins=tuple(resolved.unfetched),
            warnings=tuple(self.warnings),
            generated_secrets=frozenset(self.generated),
        )


_PRIVATE_BLOCKS = (IPv4Network("10.0.0.0/8"), IPv4Network("172.16.0.0/12"), IPv4Network("192.168.0.0/16"))


def _free_range(prefixlen: int, avoid: list[IPv4Network], near: IPv4Network) -> IPv4Network | None:
    """The first /prefixlen in the private blocks that overlaps nothing in
    avoid, trying the block that holds near (the key's default) first."""
    size = 2 ** (32 - prefixlen)
    blocks = sorted(_PRIVATE_BLOCKS, key=lambda block: not near.subnet_of(block))
    for block in blocks:
        if prefixlen < block.prefixlen:
            continue
        start = int(block.network_address)
        while start + size - 1 <= int(block.broadcast_address):
            candidate = IPv4Network((start, prefixlen))
            clash = next((used for used in avoid if candidate.overlaps(used)), None)
            if clash is None:
                return candidate
            # Go on from the first aligned start after the clashing network.
            after_clash = int(clash.broadcast_address) + 1
            start = max(start + size, -(-after_clash // size) * size)
    return None


def _show(text: str) -> str:
    """A value as messages show it: bare when that is unambiguous, else quoted."""
    if text and not any(char.isspace() or char in "'\"" for char in text):
        return text
    return repr(text)
