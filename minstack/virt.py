"""Which libvirt domain type this host can really run guests with: kvm or qemu (TCG).

``LIBVIRT_TYPE=auto`` (the default) must not trust the presence of /dev/kvm:
on some hosts the device is there but broken (kvm-pvm: a guest crawls, then
qemu stops it with "KVM internal error ... emulation failure"), and libvirt's
capabilities still offer kvm.  So minstack tries: it boots the offline test
image (minstack/testimage.py) under ``-accel kvm`` and watches the serial
console.  Only a guest whose kernel reaches userspace makes the answer kvm.

The probe costs up to PROBE_TIMEOUT seconds, so its verdict is kept in
``$DATA_DIR/minstack/virt-type.json``, valid for as long as the kernel and
QEMU versions it was made with stay the same.
"""
from __future__ import annotations

import json
import logging
import os
import re
import select
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

QEMU = "qemu-system-x86_64"
KVM_DEVICE = Path("/dev/kvm")
PROBE_TIMEOUT = 45.0
CACHE_NAME = "virt-type.json"

# Console lines that prove the guest kernel reached userspace: the kernel's own
# line when it starts /init, and the first line the test image's /init prints.
USERSPACE_MARKERS = ("Run /init as init process", "init: starting minstack-testimage")
# Console lines that prove KVM cannot run this guest (qemu then pauses the guest
# or exits; either way waiting longer cannot help).
KVM_FAILURE_MARKERS = ("KVM internal error", "emulation failure", "Could not access KVM kernel module",
                       "failed to initialize kvm", "failed to initialize KVM")


ANSI_ESCAPE = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|[A-Za-z])")


@dataclass(frozen=True)
class ProbeResult:
    """What booting the test image under KVM showed."""

    booted: bool
    detail: str
    seconds: float = 0.0
    conclusive: bool = True   # False: the probe could not run (no test image); not worth recording


@dataclass(frozen=True)
class Decision:
    virt_type: str      # "kvm" or "qemu"
    reason: str         # one sentence for the phase log and the state file


# ---- pure decision logic (unit-tested) -------------------------------------------------------------
def judge_console(lines: Iterable[str]) -> ProbeResult | None:
    """A verdict from the console lines seen so far, or None while they prove nothing yet."""
    for line in lines:
        for marker in KVM_FAILURE_MARKERS:
            if marker in line:
                return ProbeResult(False, f"qemu printed {line.strip()!r}")
        for marker in USERSPACE_MARKERS:
            if marker in line:
                return ProbeResult(True, f"the guest kernel reached userspace ({line.strip()!r})")
    return None


def judge_end(returncode: int | None, timeout: float, last_lines: list[str]) -> ProbeResult:
    """The verdict when the console showed neither a marker nor a failure before qemu ended or time ran out."""
    tail = " | ".join(line.strip() for line in last_lines[-3:] if line.strip()) or "no output"
    if returncode is None:
        return ProbeResult(False, f"the guest did not reach userspace within {timeout:.0f}s (last: {tail})")
    return ProbeResult(False, f"qemu exited with code {returncode} before the guest reached userspace "
                              f"(last: {tail})")


def console_text(raw: bytes) -> str:
    """A console line as text, without the terminal control sequences SeaBIOS and the kernel print."""
    return ANSI_ESCAPE.sub("", raw.decode(errors="replace")).replace("\r", "")


def decide(setting: str, kvm_device_present: bool, probe: Callable[[], ProbeResult]) -> Decision:
    """kvm or qemu for LIBVIRT_TYPE=setting; probe() boots a guest under KVM (called only if needed)."""
    if setting in ("kvm", "qemu"):
        return Decision(setting, f"LIBVIRT_TYPE={setting} in the configuration")
    if setting != "auto":
        raise ValueError(f"LIBVIRT_TYPE must be auto, kvm or qemu, not {setting!r}")
    if not kvm_device_present:
        return Decision("qemu", f"{KVM_DEVICE} does not exist: software emulation (TCG)")
    result = probe()
    if not result.conclusive:
        return Decision("qemu", f"{KVM_DEVICE} exists, but {result.detail}")
    if result.booted:
        return Decision("kvm", f"a test guest booted under KVM in {result.seconds:.1f}s: {result.detail}")
    return Decision("qemu", f"{KVM_DEVICE} exists but a test guest does not run under KVM: {result.detail}")


def host_key(kernel: str, qemu_version: str) -> dict[str, str]:
    """What a recorded verdict depends on: the host kernel (KVM) and QEMU."""
    return {"kernel": kernel, "qemu": qemu_version}


def cached_decision(record: dict | None, key: dict[str, str]) -> Decision | None:
    """The recorded verdict if it was made on this kernel and QEMU, else None."""
    if not record or record.get("key") != key:
        return None
    if record.get("virt_type") not in ("kvm", "qemu"):
        return None
    return Decision(record["virt_type"], str(record.get("reason", "")))


# ---- the host ---------------------------------------------------------------------------------------
def current_key() -> dict[str, str]:
    uname = os.uname()
    out = subprocess.run([QEMU, "--version"], capture_output=True, text=True, check=True).stdout
    return host_key(f"{uname.release} {uname.version}", out.splitlines()[0].strip())


def cache_path(settings) -> Path:
    return settings.state_dir / CACHE_NAME


def boot_probe(image: Path, log: logging.Logger, timeout: float = PROBE_TIMEOUT, accel: str = "kvm") -> ProbeResult:
    """Boot image under KVM (throwaway overlay, no NIC) and watch its serial console.

    ``accel="tcg"`` runs the same probe under software emulation (the tests use
    it to show the probe does recognise a guest that works).

    qemu is run here rather than through minstack.shell: the probe has to read
    the console as it comes and stop qemu as soon as a line decides (a guest
    that works never exits by itself).  qemu is killed, by its pid, when done.
    """
    argv = [QEMU, "-accel", accel, "-machine", "pc", "-m", "256", "-nographic", "-nic", "none",
            "-snapshot", "-drive", f"file={image},format=qcow2,if=virtio"]
    log.info("$ %s  (probe: watching the console for up to %.0fs)", " ".join(argv), timeout)
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[str] = []
    pending = b""
    verdict: ProbeResult | None = None
    timed_out = False
    try:
        while verdict is None:
            left = timeout - (time.monotonic() - started)
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([proc.stdout], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:  # qemu exited
                break
            pending += chunk
            *complete, pending = pending.split(b"\n")
            new = [console_text(c) for c in complete]
            for line in new:
                log.debug("  console: %s", line)
            lines += new
            verdict = judge_console(new)
    finally:
        if proc.poll() is None:
            proc.kill()
        returncode = proc.wait()
        proc.stdout.close()
    seconds = time.monotonic() - started
    if verdict is None:
        lines.append(console_text(pending))
        verdict = judge_end(None if timed_out else returncode, timeout, lines)
    log.info("  -> probe: %s after %.1fs (qemu stopped, exit %s)", verdict.detail, seconds, returncode)
    return ProbeResult(verdict.booted, verdict.detail, seconds)


def known(settings) -> Decision | None:
    """The decision if it needs no probe (an explicit setting, no /dev/kvm, a valid record), else None."""
    if settings.libvirt_type != "auto" or not KVM_DEVICE.exists():
        return decide(settings.libvirt_type, KVM_DEVICE.exists(), probe=_no_probe)
    try:
        record = json.loads(cache_path(settings).read_text())
    except (OSError, ValueError):
        return None
    return cached_decision(record, current_key())


def detect(settings, log: logging.Logger, run: Callable[[list[str]], str] | None = None) -> Decision:
    """Decide kvm or qemu for this host, probing only when nothing recorded applies; records a probe's verdict.

    ``run`` executes the test image's build commands (minstack passes its logging shell).
    """
    if settings.libvirt_type != "auto" or not KVM_DEVICE.exists():
        decision = decide(settings.libvirt_type, KVM_DEVICE.exists(), probe=_no_probe)
        log.info("virt type %s: %s", decision.virt_type, decision.reason)
        return decision
    key = current_key()
    path = cache_path(settings)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = None
    recorded = cached_decision(record, key)
    if recorded is not None:
        log.info("virt type %s, recorded for kernel %s and %s: %s", recorded.virt_type, key["kernel"],
                 key["qemu"], recorded.reason)
        return recorded

    results: list[ProbeResult] = []

    def probe() -> ProbeResult:
        from minstack import paths, testimage
        try:
            with tempfile.TemporaryDirectory(prefix="minstack-virt-probe.") as work:
                image = testimage.build_test_image(paths.CACHE, Path(work), run)
        except Exception as exc:  # e.g. offline with nothing cached: qemu always works, KVM is unproven
            log.warning("cannot build the test image to try KVM with: %s", exc)
            results.append(ProbeResult(False, f"KVM is untried: the test image could not be built ({exc})",
                                       conclusive=False))
        else:
            results.append(boot_probe(image, log))
        return results[-1]

    decision = decide("auto", True, probe)
    if not results[-1].conclusive:
        log.info("virt type %s (not recorded: the next run tries KVM again): %s", decision.virt_type,
                 decision.reason)
        return decision
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, **asdict(decision), "decided_at": time.strftime("%F %T")},
                               indent=2) + "\n")
    log.info("virt type %s (recorded in %s): %s", decision.virt_type, path, decision.reason)
    return decision


def _no_probe() -> ProbeResult:
    raise AssertionError("no probe is needed without /dev/kvm or with an explicit LIBVIRT_TYPE")


def virt_type(settings, log: logging.Logger | None = None) -> str:
    """"kvm" or "qemu": the libvirt domain type Nova should use on this host (see detect)."""
    return detect(settings, log or logging.getLogger("minstack.virt")).virt_type
