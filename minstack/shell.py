"""The one way minstack runs a command.

Every command goes through :class:`Shell.run`, built on plumbum: it logs the
command line (secrets masked), streams the command's output into the phase's
log as it arrives, and logs the exit code and the time it took.  A failure
raises :class:`CommandFailed`, which carries what the failure report shows.
"""
from __future__ import annotations

import logging
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from plumbum import local
from plumbum.commands.processes import ProcessTimedOut, iter_lines

from minstack.errors import MinstackError
from minstack.masking import mask


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class CommandFailed(MinstackError):
    def __init__(self, result: Result, log_path: Path | None):
        self.result = result
        self.log_path = log_path
        self.command = mask(shlex.join(result.argv))
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        detail = ("\n    " + "\n    ".join(mask(line) for line in tail)) if tail else ""
        super().__init__(f"command failed with exit code {result.returncode} "
                         f"after {result.seconds:.1f}s: {self.command}{detail}")


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return data or ""


class Shell:
    """Runs commands for one phase, logging into that phase's logger."""

    def __init__(self, log: logging.Logger, log_path: Path | None = None, dry_run: bool = False):
        self.log = log
        self.log_path = log_path
        self.dry_run = dry_run

    def run(self, argv: Sequence[str | Path], *, check: bool = True, env: Mapping[str, str] | None = None,
            cwd: str | Path | None = None, input: str | None = None, timeout: float | None = None,
            user: str | None = None, quiet: bool = False) -> Result:
        """Run argv (never through a shell).

        ``user`` runs the command as that user through runuser (root only).
        ``quiet`` keeps the output out of the log (the command, exit code and
        time are still logged): for commands whose output is data.
        """
        argv = [str(a) for a in argv]
        if user:
            argv = ["runuser", "-u", user, "--", *argv]
        line = mask(shlex.join(argv))
        self.log.info("$ %s", line)
        command = local[argv[0]][argv[1:]]
        if env:
            command = command.with_env(**env)
        if cwd:
            command = command.with_cwd(str(cwd))
        if input is not None:
            command = command << input

        started = time.monotonic()
        proc = command.popen()
        try:
            if quiet:  # data: keep the bytes exactly as printed
                stdout, stderr = (_text(data) for data in proc.communicate(timeout=timeout))
            else:  # progress: stream each line into the log as it comes
                stdout, stderr = self._stream(proc, timeout)
            returncode = proc.wait()
        except (ProcessTimedOut, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
            stdout, stderr, returncode = "", f"timed out after {timeout}s\n", -9
        seconds = time.monotonic() - started
        result = Result(argv, returncode, stdout or "", stderr or "", seconds)
        self.log.info("  -> exit %d in %.2fs", returncode, seconds)
        if check and returncode != 0:
            raise CommandFailed(result, self.log_path)
        return result

    def _stream(self, proc, timeout: float | None) -> tuple[str, str]:
        out: list[str] = []
        err: list[str] = []
        for stdout_line, stderr_line in iter_lines(proc, retcode=None, timeout=timeout):
            text = stdout_line if stdout_line is not None else stderr_line
            (out if stdout_line is not None else err).append(text.rstrip("\n") + "\n")
            self.log.info("  %s", text.rstrip("\n"))
        return "".join(out), "".join(err)

    def ok(self, argv: Sequence[str | Path], **kwargs) -> bool:
        """True when the command exits 0 (for checks; output kept out of the log)."""
        kwargs.setdefault("quiet", True)
        return self.run(argv, check=False, **kwargs).ok

    def output(self, argv: Sequence[str | Path], **kwargs) -> str:
        """The command's stdout (not logged line by line); raises on failure."""
        kwargs.setdefault("quiet", True)
        return self.run(argv, **kwargs).stdout
