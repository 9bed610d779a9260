"""Starts, watches and stops the long-running processes of the stack.

Two implementations of one small interface, picked by what PID 1 is:

- :class:`SystemdSupervisor` where systemd runs (a Vagrant box, a laptop VM):
  one ``minstack-<name>.service`` unit per daemon, so ``systemctl`` and
  ``journalctl`` work as users expect.
- :class:`ProcessSupervisor` everywhere else (containers, CI hosts whose PID 1
  is not systemd): minstack starts each daemon itself in its own session,
  output appended to ``$LOGDIR/<name>.log``, and remembers it in a pidfile
  holding the pid *and* the process start time, so a recycled pid is never
  mistaken for ours and only processes we started are ever signalled.

We chose our own small supervisor over supervisord: it is ~200 lines, needs
no extra daemon that itself would need supervising on a host without an init
system, and status/stop/restart share the psutil code with ``stack.py status``.
A daemon that crashes stays down until the next ``./stack.py`` (which starts
it again), as DevStack's users know it; ``./stack.py status`` shows it down.
"""
from __future__ import annotations

import json
import logging
import os
import pwd
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psutil

from minstack.errors import MinstackError
from minstack.masking import mask


@dataclass
class Daemon:
    name: str                      # also the log name: $LOGDIR/<name>.log
    argv: list[str]
    user: str = "root"
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    ready: Callable[[], bool] | None = None   # True once the daemon answers
    ready_timeout: float = 120.0
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 40.0
    service: str = ""              # the DevStack service name it implements (for status)
    # Where systemd runs: the distribution's own units for this program (started by apt, enabled
    # for every boot), which this daemon's minstack-<name>.service replaces.
    distro_units: tuple[str, ...] = ()
    # directories under /run it needs (/run is a tmpfs: after a reboot they are gone until made
    # again); systemd makes them before it starts the unit (RuntimeDirectory=, kept on stop)
    runtime_dirs: tuple[str, ...] = ()
    # Where systemd runs: minstack-<service>.service names this daemon's unit too (systemctl
    # restart minstack-n-api), for the one daemon that is its service.  False for a daemon that
    # only helps another of the same service (epmd for rabbit, virtlogd for n-cpu).
    unit_alias: bool = True


@dataclass
class DaemonStatus:
    name: str
    service: str
    running: bool
    pid: int | None = None
    ports: list[str] = field(default_factory=list)
    rss_bytes: int = 0
    user: str = ""
    code: str = ""                 # where its code comes from (a release's version, a distro package)
    pss_bytes: int = 0             # proportional set size of the process tree (root can read it)


class DaemonFailed(MinstackError):
    def __init__(self, name: str, reason: str, log_path: Path | str, lines: list[str] | None = None):
        self.log_path = log_path       # a file, or where systemd runs the journalctl command that shows it
        self.lines = lines             # its last lines, when they are not in a file
        self.name = name
        super().__init__(f"{name} {reason}; see {log_path}")


def tail(path: Path, lines: int = 15) -> list[str]:
    """The last lines of a file (masked), reading back from its end only as far as they reach."""
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            start, data = end, b""
            while start > 0 and data.count(b"\n") <= lines:
                start = max(0, start - 16384)
                f.seek(start)
                data = f.read(end - start)
    except OSError:
        return []
    return [mask(line) for line in data.decode(errors="replace").splitlines()[-lines:]] if lines > 0 else []


def process_tree_status(name: str, service: str, proc: psutil.Process | None) -> DaemonStatus:
    if proc is None:
        return DaemonStatus(name, service, False)
    procs = [proc]
    try:
        procs += proc.children(recursive=True)
    except psutil.Error:
        pass
    ports: set[str] = set()
    rss = pss = 0
    for p in procs:
        try:
            rss += p.memory_info().rss
            pss += proportional_set_size(p)
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN:
                    ports.add(f"{c.laddr.ip}:{c.laddr.port}")
        except psutil.Error:
            continue
    try:
        user = proc.username()
    except psutil.Error:
        user = "?"
    return DaemonStatus(name, service, True, proc.pid, sorted(ports), rss, user, pss_bytes=pss)


def proportional_set_size(proc: psutil.Process) -> int:
    """PSS: each shared page counted once across all processes (so sums are honest); 0 when unreadable."""
    try:
        return getattr(proc.memory_full_info(), "pss", 0)
    except (psutil.AccessDenied, psutil.ZombieProcess):
        return 0


class Supervisor:
    """The interface phases use."""

    def __init__(self, run_dir: Path, logdir: Path):
        self.run_dir = run_dir
        self.logdir = logdir

    def log_path(self, d: Daemon) -> Path:
        return self.logdir / f"{d.name}.log"

    def log_source(self, d: Daemon) -> Path | str:
        """Where d's output is, as a user reads it."""
        return self.log_path(d)

    def log_tail(self, d: Daemon, lines: int) -> list[str]:
        """The last lines of d's output (masked)."""
        return tail(self.log_path(d), lines)

    def failed(self, d: Daemon, reason: str) -> DaemonFailed:
        return DaemonFailed(d.name, reason, self.log_path(d))

    # implemented below
    def process(self, d: Daemon) -> psutil.Process | None: ...
    def _spawn(self, d: Daemon, log: logging.Logger) -> None: ...
    def _terminate(self, d: Daemon, log: logging.Logger) -> None: ...

    def is_running(self, d: Daemon) -> bool:
        return self.process(d) is not None

    def ensure_running(self, d: Daemon, log: logging.Logger, restart: bool = False) -> str:
        """Start d unless it runs; restart it when asked (its config changed). Waits until ready."""
        if self.is_running(d):
            if not restart:
                return "running"
            log.info("restarting %s (its configuration changed)", d.name)
            self._terminate(d, log)
            action = "restarted"
        else:
            action = "started"
        self._spawn(d, log)
        self.wait_ready(d, log)
        log.info("%s %s (pid %s)", d.name, action, self.process(d).pid if self.process(d) else "?")
        return action

    def wait_ready(self, d: Daemon, log: logging.Logger) -> None:
        deadline = time.monotonic() + d.ready_timeout
        while True:
            if not self.is_running(d):
                raise self.failed(d, "exited while starting")
            if d.ready is None:
                return
            try:
                if d.ready():
                    return
            except Exception as exc:  # a probe that cannot connect yet
                log.debug("%s not ready: %s", d.name, exc)
            if time.monotonic() > deadline:
                raise self.failed(d, f"did not become ready within {d.ready_timeout:.0f}s")
            time.sleep(0.3)

    def stop(self, d: Daemon, log: logging.Logger) -> bool:
        if not self.is_running(d):
            return False
        self._terminate(d, log)
        return True

    def status(self, d: Daemon) -> DaemonStatus:
        return process_tree_status(d.name, d.service, self.process(d))

    def forget(self, d: Daemon) -> None:
        """./unstack.py --clean: remove what the supervisor keeps for a stopped daemon."""

    def stale(self, d: Daemon) -> str | None:
        """Why a running d must restart to run as minstack now describes it (None: it need not)."""
        return None


class ProcessSupervisor(Supervisor):
    """minstack itself is the supervisor (no systemd)."""

    def forget(self, d: Daemon) -> None:
        self._pidfile(d).unlink(missing_ok=True)

    def _pidfile(self, d: Daemon) -> Path:
        return self.run_dir / f"{d.name}.json"

    def process(self, d: Daemon) -> psutil.Process | None:
        try:
            record = json.loads(self._pidfile(d).read_text())
            proc = psutil.Process(record["pid"])
            if abs(proc.create_time() - record["create_time"]) > 1.0:
                return None  # the pid was recycled: not ours
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except (OSError, ValueError, KeyError, psutil.Error):
            return None

    def _spawn(self, d: Daemon, log: logging.Logger) -> None:
        account = pwd.getpwnam(d.user)
        log_path = self.log_path(d)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.fchown(fd, account.pw_uid, account.pw_gid)
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": account.pw_dir if os.path.isdir(account.pw_dir) else "/", "USER": d.user, "LOGNAME": d.user,
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            **d.env,
        }
        as_other_user = d.user != "root"
        log.info("starting %s: %s (as %s, log %s)", d.name, mask(" ".join(d.argv)), d.user, log_path)
        with os.fdopen(fd, "ab") as out:
            out.write(f"\n==== minstack started {d.name} at {time.strftime('%F %T')} ====\n".encode())
            out.flush()
            proc = subprocess.Popen(
                d.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=d.cwd or (account.pw_dir if os.path.isdir(account.pw_dir) else "/"), env=env, start_new_session=True,
                user=account.pw_uid if as_other_user else None,
                group=account.pw_gid if as_other_user else None,
                extra_groups=os.getgrouplist(d.user, account.pw_gid) if as_other_user else None,
            )
        created = psutil.Process(proc.pid).create_time()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._pidfile(d).write_text(json.dumps({"pid": proc.pid, "create_time": created, "argv": d.argv}))

    def _terminate(self, d: Daemon, log: logging.Logger) -> None:
        """The stop signal to the daemon, which ends its children its own way; the children it
        leaves behind get the signal once it is gone (neutron-ovn-agent's sudo rootwrap daemon
        outlived it by the whole timeout, 40 s of every unstack); what remains after the timeout
        is killed."""
        proc = self.process(d)
        if proc is None:
            return
        try:
            family = [proc] + proc.children(recursive=True)
        except psutil.Error:
            family = [proc]
        log.info("stopping %s (pid %d, signal %s)", d.name, proc.pid, signal.Signals(d.stop_signal).name)
        deadline = time.monotonic() + d.stop_timeout
        _signal(proc, d.stop_signal)
        alive = wait_gone([proc], deadline)
        left = wait_gone(family[1:], time.monotonic())
        for child in left:
            _signal(child, d.stop_signal)
        alive += wait_gone(left, max(deadline, time.monotonic() + 5))
        for p in alive:
            log.warning("%s: pid %d ignored %s for %.0fs, killing it", d.name, p.pid,
                        signal.Signals(d.stop_signal).name, d.stop_timeout)
            _signal(p, signal.SIGKILL)
        wait_gone(alive, time.monotonic() + 5)
        self._pidfile(d).unlink(missing_ok=True)


def _signal(proc: psutil.Process, signum: int) -> None:
    try:
        proc.send_signal(signum)
    except psutil.NoSuchProcess:
        pass


def wait_gone(procs: list[psutil.Process], deadline: float) -> list[psutil.Process]:
    """Wait until each process has exited (a zombie has: where PID 1 does not reap, an orphan
    stays one); the ones still alive at the deadline."""
    while True:
        alive = []
        for p in procs:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.NoSuchProcess:
                continue
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.1)


# What the OpenStack services need first: the daemons that replace a distro unit (MariaDB,
# RabbitMQ, memcached, OVS, OVN: see their phases' distro_units) and libvirt.  Every other unit is
# ordered after them, so a boot starts them first and a shutdown stops them last (unordered, a
# reboot stopped everything at once and nova-api ran into its whole 40 s TimeoutStopSec).  An
# ordering on a unit that does not exist is ignored by systemd.
BASE_UNITS = ("minstack-mysql.service", "minstack-epmd.service", "minstack-rabbitmq.service",
              "minstack-memcached.service", "minstack-ovsdb-server.service", "minstack-ovs-vswitchd.service",
              "minstack-ovn-nb-ovsdb.service", "minstack-ovn-sb-ovsdb.service", "minstack-ovn-northd.service",
              "minstack-ovn-controller.service", "libvirtd.service")
# Ceph (phases/ceph.py, with c-vol or c-bak): after the base units, and before every OpenStack unit,
# so that cinder-volume's RBD driver finds its cluster at boot and nova-compute powers guests on with
# their RBD disks reachable; a shutdown stops Ceph after them.  Its daemons' DevStack service: "ceph".
STORAGE_SERVICE = "ceph"
STORAGE_UNITS = ("minstack-ceph-mon.service", "minstack-ceph-mgr.service", "minstack-ceph-osd.service")


def units_after(d: Daemon) -> tuple[str, ...]:
    """The units d's unit starts after (and stops before)."""
    if d.service == STORAGE_SERVICE:
        return BASE_UNITS
    if d.distro_units:
        return ()
    return BASE_UNITS + STORAGE_UNITS


class SystemdSupervisor(Supervisor):
    """One systemd unit per daemon: ``minstack-<name>.service``.  Its output goes to the journal
    (``journalctl -u minstack-<name>``, which ``./stack.py logs`` reads), not to $LOGDIR."""

    unit_dir = Path("/etc/systemd/system")

    def unit_name(self, d: Daemon) -> str:
        return f"minstack-{d.name}.service"

    def log_source(self, d: Daemon) -> str:
        return f"journalctl -u {self.unit_name(d)}"

    def log_tail(self, d: Daemon, lines: int) -> list[str]:
        out = subprocess.run(["journalctl", "-u", self.unit_name(d), "-o", "cat", "--no-pager", "-n", str(lines)],
                             capture_output=True, text=True)
        return [mask(line) for line in out.stdout.splitlines()[-lines:]] if lines > 0 else []

    def failed(self, d: Daemon, reason: str) -> DaemonFailed:
        return DaemonFailed(d.name, reason, self.log_source(d), self.log_tail(d, 20))

    def unit_alias(self, d: Daemon) -> str | None:
        """The DevStack name as a unit alias (minstack-n-api.service for minstack-nova-api.service),
        made by `systemctl enable`: what DevStack users type still names the unit."""
        if d.unit_alias and d.service and d.service != d.name:
            return f"minstack-{d.service}.service"
        return None

    def unit_text(self, d: Daemon) -> str:
        from minstack import templates
        return templates.environment().get_template("systemd.service.j2").render(
            d=d, signal_name=signal.Signals(d.stop_signal).name,
            after=units_after(d), alias=self.unit_alias(d))

    def process(self, d: Daemon) -> psutil.Process | None:
        out = subprocess.run(["systemctl", "show", "-p", "MainPID", "--value", self.unit_name(d)],
                             capture_output=True, text=True)
        pid = int(out.stdout.strip() or 0) if out.returncode == 0 else 0
        if not pid:
            return None
        try:
            return psutil.Process(pid)
        except psutil.Error:
            return None

    def stale(self, d: Daemon) -> str | None:
        """A unit file written by an older minstack (a running daemon's unit is written only when it
        starts): what a boot would start is not what this minstack describes."""
        path = self.unit_dir / self.unit_name(d)
        return None if path.exists() and path.read_text() == self.unit_text(d) else f"its unit {path} changed"

    def _disabled_record(self) -> Path:
        return self.run_dir / "distro-units-disabled.json"

    def _disabled(self) -> list[str]:
        try:
            return json.loads(self._disabled_record().read_text())
        except (OSError, ValueError):
            return []

    def replace_distro_units(self, d: Daemon, log: logging.Logger) -> None:
        """Stop and disable the distribution's units for d's program: apt started them on install
        (mariadb.service held MariaDB's files and port, memcached.service and epmd.socket the
        ports minstack's units need) and a boot would start them next to minstack's.  Each one
        disabled is recorded, so that --clean enables it again."""
        disabled = self._disabled()
        for unit in d.distro_units:
            enabled = subprocess.run(["systemctl", "is-enabled", unit], capture_output=True, text=True).stdout.strip()
            if enabled in ("enabled", "enabled-runtime"):
                log.info("systemctl disable %s (minstack-%s replaces it)", unit, d.name)
                subprocess.run(["systemctl", "disable", unit], check=True, capture_output=True)
                if unit not in disabled:
                    disabled.append(unit)
        if disabled != self._disabled():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._disabled_record().write_text(json.dumps(disabled))
        # Stopped, and waited for, all of them: `disable --now ovn-host.service` returned while the
        # stop it propagated to ovn-controller.service (PartOf=) still ran, and that unit's ExecStop
        # (ovn-ctl stop_controller, by the same pidfile) then killed minstack's new ovn-controller.
        if d.distro_units:
            subprocess.run(["systemctl", "stop", *d.distro_units], check=False, capture_output=True)

    def restore_distro_units(self, d: Daemon) -> None:
        """--clean: the distribution's units minstack disabled for d are enabled again (not started)."""
        disabled = self._disabled()
        for unit in [u for u in d.distro_units if u in disabled]:
            subprocess.run(["systemctl", "enable", unit], check=False, capture_output=True)
            disabled.remove(unit)
        if self._disabled_record().exists():
            self._disabled_record().write_text(json.dumps(disabled))

    def _spawn(self, d: Daemon, log: logging.Logger) -> None:
        self.replace_distro_units(d, log)
        path = self.unit_dir / self.unit_name(d)
        text = self.unit_text(d)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            subprocess.run(["systemctl", "daemon-reload"], check=True)
        log.info("systemctl start %s", self.unit_name(d))
        subprocess.run(["systemctl", "enable", "--now", self.unit_name(d)], check=True,
                       capture_output=True)

    def _terminate(self, d: Daemon, log: logging.Logger) -> None:
        log.info("systemctl stop %s", self.unit_name(d))
        subprocess.run(["systemctl", "stop", self.unit_name(d)], check=False, capture_output=True)

    def forget(self, d: Daemon) -> None:
        self.remove_unit(d)
        self.restore_distro_units(d)

    def remove_unit(self, d: Daemon) -> None:
        """Disable and delete minstack-<name>.service (./unstack.py --clean)."""
        path = self.unit_dir / self.unit_name(d)
        if path.exists():
            subprocess.run(["systemctl", "disable", self.unit_name(d)], check=False, capture_output=True)
            path.unlink()
            subprocess.run(["systemctl", "daemon-reload"], check=False)
        # a unit whose stop ended in a kill stays listed as 'not-found failed' until reset
        subprocess.run(["systemctl", "reset-failed", self.unit_name(d)], check=False, capture_output=True)


def systemd_is_init() -> bool:
    return Path("/run/systemd/system").is_dir()


def make_supervisor(run_dir: Path, logdir: Path) -> Supervisor:
    cls = SystemdSupervisor if systemd_is_init() else ProcessSupervisor
    return cls(run_dir, logdir)
