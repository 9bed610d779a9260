"""A strict fingerprint of what a stack can change on this host, and the difference of two.

Taken before the first ./stack.py and after ./unstack.py --clean (test_zz_lifecycle.py), and
around every refused configuration (test_bad_input.py).  Each part is a sorted list of lines;
:func:`difference` names every line that appeared or disappeared.

- ``etc``: every file under /etc with its type, mode, owner and the SHA-256 of its content (not
  its mtime: a file written again with the same content is the same file);
- ``users``/``groups``: /etc/passwd and /etc/group, one line each;
- ``mariadb``: its accounts (user@host) and databases; ``rabbitmq``: its users and vhosts.
  When the server is down, MariaDB is asked through a private instance on a socket of its own
  (no network), and RabbitMQ's state is what its database directory holds;
- ``listening``: every listening TCP/UDP socket of the stack's programs (or of an unknown one);
- ``processes``: every daemon (a session leader whose parent is PID 1, and its children) that
  runs a program of minstack's packages or of $DEST, or as the stack user;
- ``ip addr``/``ip route``/``ip link``/``netns``/``nft``: the network, without counters,
  address lifetimes and interface numbers, which move by themselves.

Distro packages stay installed by design (README), so the suite takes its "before" after the
packages phase has run: what packages bring is in both fingerprints; everything a stack adds
beyond the packages shows up.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import psutil
import pymysql

MARIADB_SOCKET = "/run/mysqld/mysqld.sock"
RABBIT_DB = Path("/var/lib/rabbitmq/mnesia")
DEBS = Path(__file__).resolve().parents[2] / "files" / "debs"
ACCOUNT_FILES = ("passwd", "group", "shadow", "gshadow", "passwd-", "group-", "shadow-", "gshadow-",
                 "subuid", "subgid", "subuid-", "subgid-")


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout


# ---- /etc, users, groups ---------------------------------------------------------------------------
def _without_accounts(data: bytes, keep_accounts: tuple[str, ...]) -> bytes:
    """An account file minus what belongs to accounts that stay by design (the stack user): their
    lines, and their names in group member lists (the groups libvirt and kvm that it joined)."""
    kept = {name.encode() for name in keep_accounts}
    lines = []
    for line in data.splitlines(keepends=True):
        fields = line.rstrip(b"\n").split(b":")
        if fields[0] in kept:
            continue
        if len(fields) in (3, 4) and fields[-1]:  # group (name:x:gid:members), gshadow (name:pw:admins:members)
            fields[-1] = b",".join(m for m in fields[-1].split(b",") if m not in kept)
            line = b":".join(fields) + b"\n"
        lines.append(line)
    return b"".join(lines)


def etc_files(root: str = "/etc", keep_accounts: tuple[str, ...] = ()) -> list[str]:
    lines = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            owner = f"{oct(stat.S_IMODE(st.st_mode))} {st.st_uid}:{st.st_gid}"
            if stat.S_ISLNK(st.st_mode):
                lines.append(f"{path} -> {os.readlink(path)}")
            elif stat.S_ISDIR(st.st_mode):
                lines.append(f"{path}/ {owner}")
            elif stat.S_ISREG(st.st_mode):
                try:
                    data = Path(path).read_bytes()
                except OSError as error:
                    lines.append(f"{path} {owner} unreadable: {error.strerror}")
                    continue
                if dirpath == root and name in ACCOUNT_FILES:
                    data = _without_accounts(data, keep_accounts)
                lines.append(f"{path} {owner} sha256:{hashlib.sha256(data).hexdigest()[:16]}")
            else:
                lines.append(f"{path} {owner} special")
    return lines


def accounts(path: str, keep_accounts: tuple[str, ...]) -> list[str]:
    return sorted(line for line in _without_accounts(Path(path).read_bytes(), keep_accounts).decode().splitlines()
                  if line)


# ---- MariaDB and RabbitMQ ----------------------------------------------------------------------------
def _mariadb_query(socket_path: str) -> list[str]:
    conn = pymysql.connect(unix_socket=socket_path, user="root", connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT User, Host FROM mysql.user")
            users = [f"account {user}@{host}" for user, host in cur.fetchall()]
            cur.execute("SHOW DATABASES")
            databases = [f"database {name}" for (name,) in cur.fetchall()]
    finally:
        conn.close()
    return sorted(users + databases)


@contextmanager
def private_mariadb():
    """A mariadbd of our own on the real data directory, on a socket of its own, no network."""
    work = Path(tempfile.mkdtemp(prefix="minstack-fingerprint-"))
    shutil.chown(work, "mysql", "mysql")
    sock = work / "mysqld.sock"
    proc = subprocess.Popen(["/usr/sbin/mariadbd", "--user=mysql", "--skip-networking", f"--socket={sock}",
                             f"--pid-file={work}/mysqld.pid", f"--log-error={work}/error.log"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (work / "error.log").read_text() if (work / "error.log").exists() else ""
                raise RuntimeError(f"a private mariadbd did not start: {log[-2000:]}")
            time.sleep(0.2)
        yield str(sock)
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(work, ignore_errors=True)


def _mariadb_answers(socket_path: str) -> bool:
    try:
        pymysql.connect(unix_socket=socket_path, user="root", connect_timeout=3).close()
        return True
    except pymysql.MySQLError:
        return False


def mariadb() -> list[str]:
    if _mariadb_answers(MARIADB_SOCKET):
        return _mariadb_query(MARIADB_SOCKET)
    if not Path("/var/lib/mysql/mysql").is_dir():
        return ["no MariaDB data directory"]
    with private_mariadb() as sock:
        return _mariadb_query(sock)


def _rabbit_runs() -> bool:
    return any(p.info["name"] == "beam.smp" and p.info["username"] == "rabbitmq"
               for p in psutil.process_iter(["name", "username"]))


def rabbitmq() -> list[str]:
    if _rabbit_runs():
        users = _run("rabbitmqctl", "-q", "list_users").splitlines()
        vhosts = _run("rabbitmqctl", "-q", "list_vhosts").splitlines()
        return sorted([f"user {line.split()[0]}" for line in users if line.strip() and line.split()[0] != "user"]
                      + [f"vhost {line.strip()}" for line in vhosts if line.strip() and line.strip() != "name"])
    # Down: its database directory says whether a node database exists at all.
    return sorted(f"database {p.name}" for p in RABBIT_DB.iterdir()) if RABBIT_DB.is_dir() else []


# ---- sockets and processes ----------------------------------------------------------------------------
def _name(pid: int | None) -> str:
    try:
        return psutil.Process(pid).name() if pid else "?"
    except psutil.Error:
        return "?"


def listening(pids: set[int] | None = None, dest: Path = Path("/opt/stack"),
              users: tuple[str, ...] = ("stack",)) -> list[str]:
    """Every listening socket of the stack's programs (see :func:`of_the_stack`), or of these
    processes, as "tcp 127.0.0.1:3306 mariadbd"; a socket whose program is unknown counts too."""
    lines = set()
    for c in psutil.net_connections(kind="inet"):
        if pids is not None and c.pid not in pids:
            continue
        if pids is None and c.pid and not of_the_stack(c.pid, dest, users):
            continue
        if c.type == 1 and c.status == psutil.CONN_LISTEN:  # SOCK_STREAM
            lines.add(f"tcp {c.laddr.ip}:{c.laddr.port} {_name(c.pid)}")
        elif c.type == 2 and not c.raddr:  # SOCK_DGRAM, not connected
            lines.add(f"udp {c.laddr.ip}:{c.laddr.port} {_name(c.pid)}")
    return sorted(lines)


def daemons() -> list[psutil.Process]:
    """Session leaders whose parent is PID 1 (what daemonizes, and what minstack starts), and their children."""
    found = []
    for p in psutil.process_iter(["pid", "ppid"]):
        try:
            if p.info["ppid"] == 1 and os.getsid(p.pid) == p.pid:
                found += [p, *p.children(recursive=True)]
        except (psutil.Error, OSError):
            continue
    return found


@lru_cache(maxsize=1)
def stack_programs() -> frozenset[str]:
    """Every file of the distro packages minstack installs (files/debs/*) and of what they depend on
    (mariadbd is in mariadb-server-core, epmd in erlang-base), but the host's base system (essential,
    required and important packages: bash, util-linux, ...).  Paths as dpkg lists them, not
    resolved: /usr/bin/python3 (a link) does not make every Python program the stack's."""
    names = []
    for path in DEBS.glob("*"):
        names += [word for line in path.read_text().splitlines() for word in line.split("#")[0].split()]
    depends = subprocess.run(["dpkg-query", "-W", "-f=${Depends},${Pre-Depends}\n", *names],
                             capture_output=True, text=True).stdout
    names += {re.sub(r"\(.*?\)|:any", "", alternative.split("|")[0]).strip()
              for alternative in depends.replace("\n", ",").split(",") if alternative.strip()}
    status = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Essential} ${Priority} ${db:Status-Abbrev}\n",
                             *sorted(set(names))], capture_output=True, text=True).stdout
    ours = [fields[0] for fields in map(str.split, status.splitlines())
            if len(fields) >= 4 and fields[1] != "yes" and fields[2] not in ("required", "important")
            and fields[3].startswith("ii")]
    listing = subprocess.run(["dpkg", "-L", *ours], capture_output=True, text=True).stdout
    return frozenset(line for line in listing.splitlines() if line.startswith("/"))


def of_the_stack(pid: int, dest: Path, users: tuple[str, ...]) -> bool:
    """A process of the stack: a program of its packages (mariadbd, qemu, haproxy, ...), anything
    from $DEST (the services' venv), anything run by the stack user.  Other programs of the host (a
    CI agent, someone else's job on a shared host) are not the stack's and change by themselves."""
    try:
        p = psutil.Process(pid)
        exe, argv, user = p.exe(), p.cmdline(), p.username()
    except psutil.Error:
        return False
    return exe in stack_programs() or str(dest) in exe or any(str(dest) in arg for arg in argv) or user in users


EPMD_STARTER = "-sname epmd-starter-"


def processes(dest: Path = Path("/opt/stack"), users: tuple[str, ...] = ("stack",)) -> list[str]:
    """The stack's daemons (:func:`of_the_stack`) and what they run."""
    lines = set()
    for p in daemons():
        try:
            if EPMD_STARTER in " ".join(p.cmdline()):
                continue  # rabbitmqctl's own helper: it ends within a second, with a new name each time
            if of_the_stack(p.pid, dest, users):
                lines.add(f"{p.username()} {p.name()}: {' '.join(p.cmdline())[:300]}")
        except psutil.Error:
            continue
    return sorted(lines)


# ---- the network ------------------------------------------------------------------------------------------
def ip_json(*args: str) -> list[dict]:
    return json.loads(_run("ip", "-j", *args) or "[]")


def network() -> dict[str, list[str]]:
    links = sorted(f"{link['ifname']} {link.get('link_type')} {link.get('address', '')} mtu {link.get('mtu')} "
                   f"master {link.get('master', '-')} {','.join(sorted(link.get('flags', [])))}"
                   for link in ip_json("link", "show"))
    addrs = sorted(f"{a['ifname']} {i['local']}/{i['prefixlen']}" for a in ip_json("addr", "show")
                   for i in a.get("addr_info", []))
    routes = sorted(json.dumps({k: v for k, v in r.items() if k not in ("expires",)}, sort_keys=True)
                    for r in ip_json("route", "show", "table", "all"))
    netns = sorted(line.split()[0] for line in _run("ip", "netns", "list").splitlines() if line.strip())
    # nft: handles and counters move by themselves; the rules are what matter
    nft = [re.sub(r"\s*# handle \d+|counter packets \d+ bytes \d+", "", line).rstrip()
           for line in _run("nft", "list", "ruleset").splitlines()]
    return {"ip link": links, "ip addr": addrs, "ip route": routes, "netns": netns, "nft": [l for l in nft if l]}


# ---- the whole ------------------------------------------------------------------------------------------------
PARTS = ("etc", "users", "groups", "mariadb", "rabbitmq", "listening", "processes", "network")


def take(keep_accounts: tuple[str, ...] = (), parts: tuple[str, ...] = PARTS,
         trees: tuple[Path, ...] = (), dest: Path = Path("/opt/stack")) -> dict[str, list[str]]:
    """The fingerprint; ``keep_accounts`` are users (and their groups) that stay by design (the stack
    user, whose processes count); ``trees`` are extra directories whose files are fingerprinted like
    /etc's; ``dest`` is $DEST."""
    result: dict[str, list[str]] = {}
    # Processes and sockets first: asking MariaDB and RabbitMQ below starts short-lived helpers
    # (rabbitmqctl's epmd-starter, a private mariadbd) that must not be caught in the act.
    if "listening" in parts:
        result["listening"] = listening(dest=dest, users=keep_accounts)
    if "processes" in parts:
        result["processes"] = processes(dest, keep_accounts)
    if "etc" in parts:
        result["etc"] = etc_files("/etc", keep_accounts)
    if "users" in parts:
        result["users"] = accounts("/etc/passwd", keep_accounts)
    if "groups" in parts:
        result["groups"] = accounts("/etc/group", keep_accounts)
    if "mariadb" in parts:
        result["mariadb"] = mariadb()
    if "rabbitmq" in parts:
        result["rabbitmq"] = rabbitmq()
    if "network" in parts:
        result.update(network())
    for tree in trees:
        result[str(tree)] = etc_files(str(tree)) if Path(tree).is_dir() else (
            [f"{tree} sha256:{hashlib.sha256(Path(tree).read_bytes()).hexdigest()[:16]}"]
            if Path(tree).exists() else [])
    return result


def difference(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[str]:
    """Every line that appeared (+) or disappeared (-), by part; empty when the host is as it was."""
    lines = []
    for part in sorted(set(before) | set(after)):
        old, new = set(before.get(part, [])), set(after.get(part, []))
        lines += [f"{part}: - {line}" for line in sorted(old - new)]
        lines += [f"{part}: + {line}" for line in sorted(new - old)]
    return lines


def settled_difference(before: dict[str, list[str]], take_again, tries: int = 3, pause: float = 2.0) -> list[str]:
    """The difference, taken again (up to ``tries`` times) while it is only in moving parts:
    a helper process a daemon runs for a second is not a change; one that stays is."""
    diff = difference(before, take_again())
    for _ in range(tries - 1):
        if not diff or any(not line.startswith(("processes:", "listening:")) for line in diff):
            break
        time.sleep(pause)
        diff = difference(before, take_again())
    return diff


def save(fingerprint: dict[str, list[str]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fingerprint, indent=1, sort_keys=True))
