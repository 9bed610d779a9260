"""No password reaches a log file or the console; credential files are private."""
from __future__ import annotations

from pathlib import Path

from conftest import ARTIFACTS, REPO


def files_to_search(settings) -> list[Path]:
    roots = [settings.logdir, ARTIFACTS]
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


def test_no_secret_in_any_log_or_console_output(settings):
    secrets = [s for s in settings.secret_values() if s]
    assert len(secrets) == 4
    files = files_to_search(settings)
    assert any(p.name == "stack.log" for p in files) and any(p.parent.name == "phases" for p in files)
    leaks = []
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            if secret.encode() in data:
                leaks.append(f"{path} holds the value of one of the passwords")
    assert not leaks, leaks


def test_credential_files_are_private(host, settings):
    for path, modes in [(settings.state_dir / "passwords", {0o600}), (REPO / "openrc", {0o600}),
                        (Path("/etc/openstack/clouds.yaml"), {0o640}),
                        (Path("/etc/keystone/keystone.conf"), {0o640})]:
        f = host.file(str(path))
        assert f.exists, path
        assert f.mode in modes, (path, oct(f.mode))
