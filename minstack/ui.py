"""Everything minstack shows on the console: live progress, the timing table,
the closing summary, the failure report and the status table.

All text passes through the secret mask before it reaches the terminal.
"""
from __future__ import annotations

import io
import sys
import threading
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from minstack.masking import mask
from minstack.pipeline import PhaseResult, Reporter, RunResult
from minstack.shell import CommandFailed
from minstack.supervisor import DaemonFailed, DaemonStatus, tail


class _MaskingStream(io.TextIOBase):
    """A stdout stand-in that masks secrets in everything written to it."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(mask(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()


def make_console() -> Console:
    stream = _MaskingStream(sys.stdout)
    # CI logs are not terminals: don't wrap plans and tables at 80 columns there
    return Console(file=stream, highlight=False, width=None if stream.isatty() else 160)


class LiveReporter(Reporter):
    """A live table (phase, step, elapsed) on a terminal; one line per event elsewhere (CI logs)."""

    def __init__(self, console: Console):
        self.console = console
        self.lock = threading.Lock()
        self.rows: dict[str, dict] = {}
        self.started = time.monotonic()
        self.live = Live(console=console, refresh_per_second=4, transient=True,
                         get_renderable=self._render) if console.is_terminal else None

    def __enter__(self):
        if self.live:
            self.live.start()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.live.stop()

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.started:6.1f}s"

    def _render(self) -> Table:
        table = Table(box=None, show_header=False, pad_edge=False)
        with self.lock:
            for name, row in self.rows.items():
                seconds = (row.get("seconds") or time.monotonic() - row["started"])
                mark = {"running": "[yellow]…[/]", "done": "[green]✓[/]", "failed": "[red]✗[/]"}[row["status"]]
                table.add_row(mark, name, row.get("step", ""), f"{seconds:5.1f}s")
        return table

    def _line(self, text: str) -> None:
        if not self.live:
            self.console.print(f"[dim]{self._elapsed()}[/] {text}")

    def phase_started(self, phase: str) -> None:
        with self.lock:
            self.rows[phase] = {"status": "running", "started": time.monotonic()}
        self._line(f"{phase}: started")

    def step_started(self, phase: str, step: str) -> None:
        with self.lock:
            self.rows[phase]["step"] = step
        self._line(f"{phase}: {step}")

    def phase_finished(self, result: PhaseResult) -> None:
        with self.lock:
            row = self.rows[result.name]
            row.update(status=result.status, seconds=result.seconds, step="")
        word = "[green]done[/]" if result.status == "done" else "[red]FAILED[/]"
        if self.live:
            self.console.print(f"{'✓' if result.status == 'done' else '✗'} {result.name:<12} {word} "
                               f"in {result.seconds:.1f}s ({result.steps_run} run, "
                               f"{result.steps_skipped} already done)")
        else:
            self._line(f"{result.name}: {word} in {result.seconds:.1f}s "
                       f"({result.steps_run} steps run, {result.steps_skipped} already done)")


def timing_table(result: RunResult) -> Table:
    """Like DevStack's time_totals, plus how much running phases side by side saved."""
    table = Table(title="Timing", title_justify="left")
    table.add_column("phase")
    table.add_column("seconds", justify="right")
    table.add_column("steps run", justify="right")
    table.add_column("skipped", justify="right")
    table.add_column("status")
    total = 0.0
    for r in sorted(result.phases.values(), key=lambda r: -r.seconds):
        total += r.seconds
        table.add_row(r.name, f"{r.seconds:.1f}", str(r.steps_run), str(r.steps_skipped), r.status)
    speedup = total / result.wall_seconds if result.wall_seconds else 1.0
    table.add_section()
    table.add_row("sum of phases", f"{total:.1f}", "", "", "")
    table.add_row("wall clock", f"{result.wall_seconds:.1f}", "", "", f"parallel speed-up ×{speedup:.2f}")
    return table


def changes_panel(result: RunResult) -> Panel:
    """On a host stacked before: each phase's steps that found something missing or different and
    made it so again (after a reboot: the daemons started, br-ex's gateway, the NAT table)."""
    table = Table.grid(padding=(0, 2))
    for r in result.phases.values():
        if r.changed:
            table.add_row(Text(r.name, style="bold"), Text(mask("; ".join(r.changed))))
    if not table.rows:
        return Panel("nothing: the host was as the last run left it", title="Restored or changed by this run",
                     expand=False)
    return Panel(table, title="Restored or changed by this run", border_style="yellow", expand=False)


def summary_panel(rows: list[tuple[str, str]], wall_seconds: float) -> Panel:
    table = Table.grid(padding=(0, 2))
    for label, value in rows:
        table.add_row(Text(label, style="bold"), Text(mask(value)))
    table.add_row(Text("total time", style="bold"), Text(f"{wall_seconds:.0f} s"))
    return Panel(table, title="minstack: the stack is up", border_style="green", expand=False)


def failure_panel(failed: PhaseResult, phase_log: Path, resume: str) -> Panel:
    error = failed.error
    parts: list = [Text(f"phase: {failed.name}", style="bold")]
    if isinstance(error, CommandFailed):
        parts.append(Text(f"command: {error.command}"))
        parts.append(Text(f"exit code: {error.result.returncode}"))
        log_path = error.log_path or phase_log
    elif isinstance(error, DaemonFailed):
        parts.append(Text(f"daemon: {error.name}"))
        log_path = error.log_path
    else:
        log_path = phase_log
    parts.append(Text(f"error: {mask(str(error)).splitlines()[0] if str(error) else type(error).__name__}"))
    if isinstance(error, CommandFailed):  # what the command itself printed last
        output = (error.result.stdout + error.result.stderr).rstrip().splitlines()
        lines, source = [mask(line) for line in output[-20:]], "the command's output"
    elif isinstance(error, DaemonFailed) and error.lines is not None:  # the journal (systemd)
        lines, source = error.lines, str(log_path)
    else:
        lines, source = tail(log_path, 20), str(log_path)
    if lines:
        parts.append(Text(f"last lines of {source}:", style="bold"))
        parts.append(Text("\n".join("  " + line for line in lines), style="dim"))
    parts.append(Text(f"log: {log_path}"))
    parts.append(Text(f"phase log: {phase_log}"))
    parts.append(Text(f"to resume, fix the cause and run: {resume}", style="bold"))
    return Panel(Group(*parts), title="minstack: stack failed", border_style="red", expand=False)


def status_table(rows: list[DaemonStatus]) -> Table:
    table = Table(title="minstack status", title_justify="left")
    for column in ("service", "daemon", "state", "pid", "user", "listening", "RSS", "code"):
        table.add_column(column)
    for r in rows:
        state = "[green]running[/]" if r.running else "[red]down[/]"
        rss = f"{r.rss_bytes / 2**20:.0f} MiB" if r.running else ""
        table.add_row(r.service, r.name, state, str(r.pid or ""), r.user, " ".join(r.ports), rss, r.code)
    total = sum(r.rss_bytes for r in rows)
    table.add_section()
    table.add_row("", "total", "", "", "", "", f"{total / 2**20:.0f} MiB", "")
    return table
