"""Standard library only: get minstack's own virtualenv, then re-execute in it.

stack.py and unstack.py call :func:`reexec_in_venv` before importing anything
that is not in the standard library.  On a fresh host with only python3 this
installs python3-venv when missing, creates ``<repo>/.venv``, installs
requirements.txt into it (again whenever that file changes) and re-executes
the script with the venv's python.  Not root: re-executes through sudo.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
REQUIREMENTS = REPO / "requirements.txt"
STAMP = VENV / ".minstack-requirements.sha256"


def _say(message: str) -> None:
    print(f"minstack: {message}", file=sys.stderr, flush=True)


def _requirements_hash() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def _venv_is_current() -> bool:
    return (VENV / "bin" / "python").exists() and STAMP.exists() and STAMP.read_text() == _requirements_hash()


def _ensure_python_venv_module() -> None:
    probe = subprocess.run([sys.executable, "-c", "import ensurepip, venv"], capture_output=True)
    if probe.returncode == 0:
        return
    _say("installing python3-venv (needed once to create minstack's virtualenv)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]
    subprocess.run(apt + ["update", "-q"], check=True, env=env)
    subprocess.run(apt + ["install", "-y", "-q", "python3-venv"], check=True, env=env)


def build_venv() -> None:
    _ensure_python_venv_module()
    _say(f"preparing minstack's own virtualenv in {VENV} (once; ~15 s)")
    if VENV.exists():
        shutil.rmtree(VENV)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                    "-r", str(REQUIREMENTS)], check=True)
    STAMP.write_text(_requirements_hash())


def reexec_in_venv(script: str) -> None:
    """Return when already running in an up-to-date venv as root; otherwise build it and exec."""
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if not sudo:
            sys.exit("minstack: run as root, or install sudo and run as a user allowed to use it")
        os.execv(sudo, [sudo, "-E", sys.executable, script, *sys.argv[1:]])
    in_venv = Path(sys.prefix).resolve() == VENV.resolve()
    if in_venv and _venv_is_current():
        return
    if not _venv_is_current():
        # two commands started at once must not both delete and rebuild the venv
        with open(REPO / ".venv.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not _venv_is_current():  # the other one may have just built it
                build_venv()
    python = str(VENV / "bin" / "python")
    os.execv(python, [python, script, *sys.argv[1:]])
