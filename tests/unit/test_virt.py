"""minstack.virt: kvm or qemu, decided by booting a guest, remembered per kernel + QEMU (no root, no qemu)."""
from __future__ import annotations

import json
import logging
import time
from types import SimpleNamespace

import pytest

from minstack import testimage, virt

LOG = logging.getLogger("test_virt")
KEY = virt.host_key("6.18.44 #1 SMP", "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18+b3)")


def never_probe():
    raise AssertionError("probe must not run")


# ---- decide ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("setting", ["kvm", "qemu"])
def test_an_explicit_setting_wins_without_probing(setting):
    for present in (True, False):
        decision = virt.decide(setting, present, never_probe)
        assert decision.virt_type == setting
        assert f"LIBVIRT_TYPE={setting}" in decision.reason


def test_auto_without_dev_kvm_is_qemu_without_probing():
    decision = virt.decide("auto", False, never_probe)
    assert decision.virt_type == "qemu"
    assert "/dev/kvm does not exist" in decision.reason


def test_auto_with_dev_kvm_is_kvm_only_when_a_guest_boots():
    booted = virt.decide("auto", True, lambda: virt.ProbeResult(True, "reached userspace", 3.2))
    assert booted.virt_type == "kvm"
    assert "3.2s" in booted.reason and "reached userspace" in booted.reason


def test_auto_with_a_broken_kvm_falls_back_to_qemu_and_says_why():
    broken = virt.decide("auto", True,
                         lambda: virt.ProbeResult(False, "qemu printed 'KVM internal error. Suberror: 1'", 8.0))
    assert broken.virt_type == "qemu"
    assert "exists but a test guest does not run under KVM" in broken.reason
    assert "KVM internal error" in broken.reason


def test_an_unknown_setting_is_refused():
    with pytest.raises(ValueError):
        virt.decide("xen", True, never_probe)


# ---- reading the console -------------------------------------------------------------------------------
def test_console_kvm_failure_is_decisive():
    result = virt.judge_console(["SYSLINUX 6.04 EDD", "KVM internal error. Suberror: 1", "emulation failure"])
    assert result == virt.ProbeResult(False, "qemu printed 'KVM internal error. Suberror: 1'")


@pytest.mark.parametrize("line", ["[    2.556896] Run /init as init process",
                                  "init: starting minstack-testimage on 6.1.0-56-cloud-amd64"])
def test_console_userspace_markers_mean_booted(line):
    result = virt.judge_console(["[    0.000000] Linux version 6.1.0", line])
    assert result is not None and result.booted and line.strip() in result.detail


def test_console_without_a_marker_proves_nothing_yet():
    assert virt.judge_console(["SeaBIOS (version 1.16.2)", "Booting from Hard Disk...", ""]) is None


def test_qemu_that_cannot_open_kvm_is_a_failure():
    result = virt.judge_console(["Could not access KVM kernel module: Permission denied",
                                 "qemu-system-x86_64: failed to initialize kvm: Permission denied"])
    assert result is not None and not result.booted


def test_end_without_verdict_names_timeout_or_exit_code():
    timed_out = virt.judge_end(None, 45, ["SeaBIOS", "Booting from Hard Disk..."])
    assert not timed_out.booted and "within 45s" in timed_out.detail and "Booting from Hard Disk" in timed_out.detail
    exited = virt.judge_end(1, 45, ["qemu-system-x86_64: -accel kvm: invalid accelerator"])
    assert not exited.booted and "exited with code 1" in exited.detail and "invalid accelerator" in exited.detail
    assert "no output" in virt.judge_end(1, 45, []).detail


def test_console_text_drops_terminal_escapes():
    raw = b"\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2-debian-1.16.2-1)\r"
    assert virt.console_text(raw) == "SeaBIOS (version 1.16.2-debian-1.16.2-1)"


# ---- the recorded verdict ----------------------------------------------------------------------------
def test_a_recorded_verdict_applies_only_to_the_same_kernel_and_qemu():
    record = {"key": KEY, "virt_type": "qemu", "reason": "KVM internal error"}
    assert virt.cached_decision(record, KEY) == virt.Decision("qemu", "KVM internal error")
    new_kernel = virt.host_key("6.19.1 #1 SMP", KEY["qemu"])
    assert virt.cached_decision(record, new_kernel) is None
    new_qemu = virt.host_key(KEY["kernel"], "QEMU emulator version 8.2.2")
    assert virt.cached_decision(record, new_qemu) is None
    assert virt.cached_decision(None, KEY) is None
    assert virt.cached_decision({"key": KEY, "virt_type": "xen"}, KEY) is None


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A host with /dev/kvm, a fixed kernel + QEMU, and a probe that counts its runs."""
    device = tmp_path / "kvm"
    device.touch()
    monkeypatch.setattr(virt, "KVM_DEVICE", device)
    monkeypatch.setattr(virt, "current_key", lambda: KEY)
    monkeypatch.setattr(testimage, "build_test_image", lambda cache, work, run=None: tmp_path / "image.qcow2")
    probes = []

    def fake_probe(image, log, timeout=virt.PROBE_TIMEOUT, accel="kvm"):
        probes.append(image)
        return virt.ProbeResult(False, "qemu printed 'KVM internal error. Suberror: 1'", 8.0)

    monkeypatch.setattr(virt, "boot_probe", fake_probe)
    settings = SimpleNamespace(libvirt_type="auto", state_dir=tmp_path / "state")
    return SimpleNamespace(settings=settings, probes=probes, device=device, tmp=tmp_path)


def test_detect_probes_once_then_reuses_the_record(host):
    first = virt.detect(host.settings, LOG)
    assert first.virt_type == "qemu" and len(host.probes) == 1
    record = json.loads(virt.cache_path(host.settings).read_text())
    assert record["key"] == KEY and record["virt_type"] == "qemu" and "KVM internal error" in record["reason"]
    assert virt.detect(host.settings, LOG) == first
    assert virt.virt_type(host.settings) == "qemu"
    assert len(host.probes) == 1


def test_without_a_test_image_kvm_is_untried_and_nothing_is_recorded(host, monkeypatch):
    def no_image(cache, work, run=None):
        raise RuntimeError("apt-get download failed")

    monkeypatch.setattr(testimage, "build_test_image", no_image)
    decision = virt.detect(host.settings, LOG)
    assert decision.virt_type == "qemu" and "untried" in decision.reason and "apt-get download" in decision.reason
    assert host.probes == [] and not virt.cache_path(host.settings).exists()


def test_known_never_probes(host):
    assert virt.known(host.settings) is None  # auto, /dev/kvm, nothing recorded: only detect may probe
    virt.detect(host.settings, LOG)
    assert virt.known(host.settings).virt_type == "qemu"
    host.settings.libvirt_type = "kvm"
    assert virt.known(host.settings).virt_type == "kvm"
    assert len(host.probes) == 1


def test_detect_probes_again_after_a_kernel_update(host, monkeypatch):
    virt.detect(host.settings, LOG)
    monkeypatch.setattr(virt, "current_key", lambda: virt.host_key("6.19.1 #1 SMP", KEY["qemu"]))
    virt.detect(host.settings, LOG)
    assert len(host.probes) == 2


def test_detect_without_dev_kvm_or_with_a_setting_neither_probes_nor_records(host):
    host.device.unlink()
    assert virt.detect(host.settings, LOG).virt_type == "qemu"
    host.device.touch()
    host.settings.libvirt_type = "kvm"
    assert virt.detect(host.settings, LOG).virt_type == "kvm"
    assert host.probes == [] and not virt.cache_path(host.settings).exists()


# ---- the probe process (a fake qemu: a shell script) ------------------------------------------------------
def fake_qemu(tmp_path, monkeypatch, script: str) -> None:
    path = tmp_path / "fake-qemu"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    monkeypatch.setattr(virt, "QEMU", str(path))


def test_probe_stops_qemu_at_the_first_decisive_line(tmp_path, monkeypatch):
    fake_qemu(tmp_path, monkeypatch, "echo SeaBIOS; echo 'KVM internal error. Suberror: 1'; exec sleep 60\n")
    started = time.monotonic()
    result = virt.boot_probe(tmp_path / "image.qcow2", LOG, timeout=30)
    assert time.monotonic() - started < 10  # not the sleep, not the timeout: qemu was killed
    assert not result.booted and "KVM internal error" in result.detail


def test_probe_sees_userspace(tmp_path, monkeypatch):
    fake_qemu(tmp_path, monkeypatch, "printf '[    2.5] Run /init as init process\\r\\n'; exec sleep 60\n")
    result = virt.boot_probe(tmp_path / "image.qcow2", LOG, timeout=30)
    assert result.booted and result.seconds < 10


def test_probe_reports_an_early_exit_and_a_timeout(tmp_path, monkeypatch):
    fake_qemu(tmp_path, monkeypatch, "echo 'invalid accelerator kvm' >&2; exit 1\n")
    result = virt.boot_probe(tmp_path / "image.qcow2", LOG, timeout=30)
    assert not result.booted and "exited with code 1" in result.detail and "invalid accelerator" in result.detail
    fake_qemu(tmp_path, monkeypatch, "echo 'Booting from Hard Disk...'; exec sleep 60\n")
    result = virt.boot_probe(tmp_path / "image.qcow2", LOG, timeout=1.5)
    assert not result.booted and "within 2s" in result.detail and result.seconds < 5
