"""The commands: ./stack.py [status|verify] and ./unstack.py."""
from __future__ import annotations

import argparse
import fcntl
import logging
import os
import shutil
import time
from pathlib import Path

from minstack import checkouts, masking, plugins
from minstack.context import Context
from minstack.errors import ConfigError, MinstackError
from minstack.hostinfo import HostFacts
from minstack.paths import REPO
from minstack.phase import Phase
from minstack.pipeline import Pipeline, dependencies, load_phases, look, select, waves
from minstack.settings import Settings, load_settings, save_generated_secrets
from minstack.shell import Shell
from minstack.state import State
from minstack.supervisor import SystemdSupervisor, make_supervisor
from minstack.ui import LiveReporter, changes_panel, failure_panel, make_console, status_table, summary_panel, timing_table

LOG_FORMAT = "%(asctime)s %(levelname)-7s [%(threadName)s] %(name)s: %(message)s"


# ---- configuration ---------------------------------------------------------------------------
def config_path(arg: str | None) -> Path | None:
    """--config, else $MINSTACK_CONFIG, else ./localrc, else ./local.conf (DevStack's), else defaults."""
    if arg:
        return Path(arg).resolve()
    if os.environ.get("MINSTACK_CONFIG"):
        return Path(os.environ["MINSTACK_CONFIG"]).resolve()
    for name in ("localrc", "local.conf"):
        if (REPO / name).exists():
            return REPO / name
    return None


def secrets_path(settings: Settings) -> Path:
    return settings.state_dir / "passwords"


def load_config(arg: str | None, fetch_plugins: bool = False, console=None, check_disk: bool = False) -> Settings:
    """The settings; with fetch_plugins (./stack.py), enable_plugin URLs are cloned first (and
    fetched again with RECLONE=True), then the settings load again with them.  check_disk: sizes
    of what the stack will fill are checked against the free space (stack and plan only)."""
    path = config_path(arg)
    host = HostFacts.probe(disk=check_disk)
    first = load_settings(path, host)
    settings = load_settings(path, host, secrets_file=secrets_path(first))
    if fetch_plugins and (settings.unfetched_plugins or (settings.reclone and settings.plugins)):
        for done in plugins.fetch(settings):
            if console is not None:
                console.print(f"minstack: {done}")
        settings = load_settings(path, host, secrets_file=secrets_path(first))
    masking.register(*settings.secret_values())
    return settings


# ---- one run at a time ----------------------------------------------------------------------
LOCK_PATH = Path("/run/minstack.lock")


def take_run_lock(console) -> object | None:
    """Only one stack.py/unstack.py changes this host at a time; None (after saying so) if busy."""
    handle = open(LOCK_PATH, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        console.print(f"[bold red]minstack:[/] another ./stack.py or ./unstack.py is running "
                      f"({handle.read().strip() or 'pid unknown'}); wait for it to finish")
        return None
    handle.truncate(0)
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return handle  # the lock lives as long as this file object


# ---- logging -----------------------------------------------------------------------------------
def setup_logging(settings: Settings, name: str) -> Path:
    """minstack's own log: $LOGDIR/<name>.log (stack.log, unstack.log); phases add their own files."""
    settings.logdir.mkdir(parents=True, exist_ok=True)
    path = settings.logdir / f"{name}.log"
    root = logging.getLogger("minstack")
    root.setLevel(logging.DEBUG)
    root.propagate = False
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(masking.MaskingFilter())
    root.addHandler(handler)
    return path


def phase_log(settings: Settings, phase: str, to_file: bool = True) -> tuple[logging.Logger, Path]:
    """Each phase logs into $LOGDIR/phases/<phase>.log (and into stack.log)."""
    path = settings.logdir / "phases" / f"{phase}.log"
    log = logging.getLogger(f"minstack.phase.{phase}")
    if to_file and not log.handlers:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.addFilter(masking.MaskingFilter())
        log.addHandler(handler)
    return log, path


def make_context_factory(settings: Settings, state: State, supervisor, to_file: bool = True):
    def make(phase: Phase) -> Context:
        log, path = phase_log(settings, phase.name, to_file)
        return Context(settings=settings, phase=phase.name, log=log, sh=Shell(log, path),
                       supervisor=supervisor, state=state, log_path=path)
    return make


# ---- ./stack.py --------------------------------------------------------------------------------
def stack_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stack.py", description="Stack an all-in-one OpenStack on this host.")
    p.add_argument("command", nargs="?", default="stack", choices=["stack", "status", "plan", "verify"],
                   help="stack (default), status (every service: state, pid, ports, RSS), plan (= --dry-run), "
                        "verify (check again that the test instance boots and answers ping and SSH); "
                        "also: restart NAME..., logs NAME... [-f] [-n N]")
    p.add_argument("-c", "--config", help="localrc or local.conf (default: ./localrc, then ./local.conf)")
    p.add_argument("-n", "--dry-run", action="store_true", help="print the plan; change nothing")
    p.add_argument("--only", nargs="+", metavar="PHASE", help="run only these phases")
    p.add_argument("--skip", nargs="+", metavar="PHASE", help="run every phase but these")
    p.add_argument("--json", action="store_true", help="with status: print JSON (for scripts)")
    p.add_argument("--fresh", action="store_true",
                   help="forget what earlier runs recorded: every step checks the host again")
    return p


def print_config_error(console, error: ConfigError) -> None:
    console.print("[bold red]minstack: the configuration has problems; nothing was changed.[/]")
    for problem in error.problems:
        where = f"{problem.file}:{problem.line}" if problem.line else f"{problem.file}"
        console.print(f"  [red]{where}[/]: {masking.mask(problem.message)}")


def print_plan(console, phases: list[Phase], settings: Settings, state: State) -> None:
    make = make_context_factory(settings, state, make_supervisor(settings.state_dir / "run", settings.logdir),
                                to_file=False)
    console.print(f"[bold]minstack plan[/] for {settings.source or 'the defaults'} "
                  f"(services: {', '.join(sorted(settings.enabled_services))})")
    would_run = total = checks = 0
    for number, wave in enumerate(waves(phases, settings), 1):
        names = ", ".join(p.name for p in wave)
        console.print(f"\n[bold]wave {number}[/] ({'in parallel: ' if len(wave) > 1 else ''}{names})")
        for phase in wave:
            requires = phase.requirements(settings)
            console.print(f"  [bold cyan]{phase.name}[/]"
                          + (f"  [dim]requires {', '.join(requires)}[/]" if requires else ""))
            ctx = make(phase)
            for step in phase.steps(ctx):
                if step.checks_only:
                    console.print(f"    {'[cyan]check[/] (every run)':<30} {step.name}: {step.describe}")
                    checks += 1
                    continue
                try:
                    reason = look(step, state, phase.name).skip
                except Exception:  # a probe that cannot run yet (tool not installed): it would run
                    reason = None
                mark = f"[green]ok[/] ({reason})" if reason else "[yellow]would run[/]"
                console.print(f"    {mark:<30} {step.name}: {step.describe}")
                total += 1
                would_run += reason is None
    console.print(f"\n{total} steps: {would_run} would run, {total - would_run} already done"
                  + ("; nothing to do" if not would_run else "")
                  + (f" ({checks} check{'s' if checks != 1 else ''} that only look{'s' if checks == 1 else ''} "
                     "run every time)" if checks else ""))


def load_or_report(console, config: str | None, warn: bool = True, fetch_plugins: bool = False,
                   check_disk: bool = False) -> Settings | None:
    """The validated settings, or None after printing every problem (nothing was changed)."""
    try:
        settings = load_config(config, fetch_plugins=fetch_plugins, console=console, check_disk=check_disk)
    except ConfigError as error:
        print_config_error(console, error)
        return None
    except plugins.PluginError as error:
        console.print(f"[bold red]minstack:[/] {masking.mask(str(error))}")
        return None
    for warning in settings.warnings if warn else ():
        where = f"{warning.file}:{warning.line}" if warning.line else f"{warning.file}"
        console.print(f"[yellow]warning[/] {where}: {warning.message}")
    return settings


def stack_main(argv: list[str]) -> int:
    command = first_word(argv)
    if command in DAEMON_COMMANDS:
        argv = list(argv)
        argv.remove(command)
        return daemon_command_main(command, argv)
    args = stack_parser().parse_args(argv)
    console = make_console()
    stacking = args.command == "stack" and not args.dry_run
    settings = load_or_report(console, args.config, warn=not args.json,  # --json: stdout is data only
                              fetch_plugins=stacking, check_disk=args.command in ("stack", "plan"))
    if settings is None:
        return 2
    try:
        if args.command == "status":
            return status_main(console, settings, as_json=args.json)
        only = ["verify"] if args.command == "verify" else args.only
        phases = select(load_phases(), settings, only, args.skip)
        state = State(settings.state_dir / "state.json")
        if args.dry_run or args.command == "plan":
            print_plan(console, phases, settings, state)
            return 0
        lock = take_run_lock(console)
        if lock is None:
            return 4
        return run_stack(console, settings, phases, state, args)
    except MinstackError as error:
        console.print(f"[bold red]minstack:[/] {masking.mask(str(error))}")
        return 1


def run_stack(console, settings: Settings, phases: list[Phase], state: State, args) -> int:
    # an unreachable git host is reported now, in seconds, before anything on the host changes
    checkouts.preflight(settings, Shell(logging.getLogger("minstack.checkouts")))
    save_generated_secrets(settings, secrets_path(settings))
    stack_log = setup_logging(settings, "stack")
    if args.fresh:
        state.data["steps"] = {}
    last = state.last_run
    if last and not last.get("ok"):
        console.print(f"[yellow]resuming[/]: the last run failed in phase {last.get('failed_phase')}; "
                      "steps it finished are not done again")
    console.print(f"minstack: stacking {len(phases)} phases; log {stack_log}")
    supervisor = make_supervisor(settings.state_dir / "run", settings.logdir)
    pipeline = Pipeline(phases, make_context_factory(settings, state, supervisor), state,
                        LiveReporter(console), fail_phase=settings.fail_phase, settings=settings)
    with pipeline.reporter:
        result = pipeline.run()
    console.print(timing_table(result))
    if last and last.get("ok"):  # the host was stacked: say what was not as that run left it
        console.print(changes_panel(result))
    for phase_result in result.phases.values():
        for note in phase_result.notes:
            console.print(f"[yellow]note[/] ({phase_result.name}): {note}")
    phase_seconds = {name: round(r.seconds, 2) for name, r in result.phases.items()}
    if result.failed:
        state.record_run(ok=False, failed_phase=result.failed.name, seconds=result.wall_seconds,
                         phases=phase_seconds)
        _, log_path = phase_log(settings, result.failed.name)
        console.print(failure_panel(result.failed, log_path, resume_command(args)))
        return 1
    state.record_run(ok=True, seconds=result.wall_seconds, phases=phase_seconds)
    rows = [row for wave in waves(phases, settings) for phase in wave for row in phase.summary(settings)]
    console.print(summary_panel(rows, result.wall_seconds))
    return 0


def resume_command(args) -> str:
    command = "./stack.py"
    if args.config:
        command += f" --config {args.config}"
    return command


def status_main(console, settings: Settings, as_json: bool = False) -> int:
    state = State(settings.state_dir / "state.json")
    supervisor = make_supervisor(settings.state_dir / "run", settings.logdir)
    make = make_context_factory(settings, state, supervisor, to_file=False)
    rows = []
    for phase in [p for wave in waves(select(load_phases(), settings), settings) for p in wave]:
        for daemon in phase.daemons(make(phase)):
            row = supervisor.status(daemon)
            row.code = code_source(settings, daemon)
            rows.append(row)
    libraries = library_sources(settings)
    if as_json:
        import dataclasses
        import json
        print(json.dumps([dataclasses.asdict(r) for r in rows], indent=1))
    else:
        console.print(status_table(rows))
        for line in libraries:
            console.print(f"library from git: {line}")
        for plugin in settings.plugins:
            where = f"{plugin.root}" + (f" @ {plugin.commit}" if plugin.commit else "")
            console.print(f"plugin: {plugin.name} from {where} (services: {', '.join(plugin.services) or 'none'})")
    return 0 if all(r.running for r in rows) else 3


# ---- ./stack.py restart / logs: the developer's loop ------------------------------------------------
DAEMON_COMMANDS = ("restart", "logs")


def first_word(argv: list[str]) -> str | None:
    """The command word of ./stack.py [-c FILE] COMMAND ...: the first argument that is neither an
    option nor an option's value."""
    takes_value = {"-c", "--config", "--only", "--skip"}
    skip_next = False
    for arg in argv:
        if skip_next:
            skip_next = False
        elif arg in takes_value:
            skip_next = True
        elif not arg.startswith("-"):
            return arg
    return None


def daemon_parser(command: str) -> argparse.ArgumentParser:
    what = {"restart": "Restart daemons (and wait until they answer again).",
            "logs": "Print (or follow) daemons' logs: $LOGDIR/<daemon>.log."}[command]
    p = argparse.ArgumentParser(prog=f"stack.py {command}", description=what + " NAME is a DevStack service "
                                "name (n-api), a daemon name (nova-api) or a glob (n-*, 'neutron-*').")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("-c", "--config", help="localrc or local.conf (default: ./localrc, then ./local.conf)")
    if command == "logs":
        p.add_argument("-f", "--follow", action="store_true", help="keep printing what they write")
        p.add_argument("-n", "--lines", type=int, default=40, help="how many last lines of each (default 40)")
    return p


def stack_daemons(settings: Settings, supervisor) -> list:
    """Every daemon of the enabled phases, in pipeline order."""
    make = make_context_factory(settings, State(settings.state_dir / "state.json"), supervisor, to_file=False)
    return [d for wave in waves(select(load_phases(), settings), settings) for p in wave
            for d in p.daemons(make(p))]


def match_daemons(daemons: list, names: list[str]) -> list:
    """The daemons NAMES mean, in the order given; a name that matches nothing is an error."""
    import fnmatch
    from minstack.errors import did_you_mean
    chosen = []
    for name in names:
        found = [d for d in daemons if fnmatch.fnmatchcase(d.name, name) or fnmatch.fnmatchcase(d.service, name)]
        if not found:
            known = sorted({d.name for d in daemons} | {d.service for d in daemons if d.service})
            raise MinstackError(f"no daemon or service named {name!r} on this stack"
                                + did_you_mean(name, known) + f"; known: {', '.join(known)}")
        chosen += [d for d in found if d not in chosen]
    return chosen


def daemon_command_main(command: str, argv: list[str]) -> int:
    args = daemon_parser(command).parse_args(argv)
    console = make_console()
    settings = load_or_report(console, args.config, warn=False)
    if settings is None:
        return 2
    supervisor = make_supervisor(settings.state_dir / "run", settings.logdir)
    try:
        daemons = match_daemons(stack_daemons(settings, supervisor), args.names)
        if command == "logs":
            if isinstance(supervisor, SystemdSupervisor):
                return show_journal(supervisor, daemons, args.lines, args.follow)
            return show_logs(console, [supervisor.log_path(d) for d in daemons], args.lines, args.follow)
        lock = take_run_lock(console)
        if lock is None:
            return 4
        return restart_daemons(console, settings, supervisor, daemons)
    except MinstackError as error:
        console.print(f"[bold red]minstack:[/] {masking.mask(str(error))}")
        return 1


def restart_daemons(console, settings: Settings, supervisor, daemons: list) -> int:
    import time
    setup_logging(settings, "restart")
    log = logging.getLogger("minstack.restart")
    state = State(settings.state_dir / "state.json")
    for daemon in daemons:
        before = supervisor.process(daemon)
        started = time.monotonic()
        supervisor.ensure_running(daemon, log, restart=True)
        state.restarted(daemon.name)
        after = supervisor.process(daemon)
        console.print(f"restarted {daemon.name} (pid {before.pid if before else '-'} -> "
                      f"{after.pid if after else '?'}) in {time.monotonic() - started:.1f} s")
    return 0


def show_journal(supervisor, daemons: list, lines: int, follow: bool) -> int:
    """Where systemd runs the daemons their output is in the journal: journalctl -u for each unit
    (masked); with several units the last LINES of them together, each line named."""
    import subprocess
    import sys
    argv = ["journalctl", "--no-pager", "-n", str(lines), "-o", "cat" if len(daemons) == 1 else "short-iso"]
    for d in daemons:
        argv += ["-u", supervisor.unit_name(d)]
    if follow:
        argv.append("-f")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, errors="replace")
    try:
        for line in proc.stdout:
            sys.stdout.write(masking.mask(line.rstrip("\n")) + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:  # ^C ends -f
        proc.terminate()
    return 0 if proc.wait() in (0, -15) else 1


def show_logs(console, paths: list[Path], lines: int, follow: bool, poll: float = 0.5,
              keep_following=lambda: True) -> int:
    """The last lines of each log (masked), then, with follow, what they write from now on (until ^C)."""
    import sys
    from minstack.supervisor import tail
    label = len(paths) > 1
    offsets = {}
    for path in paths:
        if label:
            console.print(f"[bold]==> {path} <==[/]")
        for line in tail(path, lines):
            sys.stdout.write(line + "\n")
        offsets[path] = path.stat().st_size if path.exists() else 0
    sys.stdout.flush()
    try:
        follow_logs(paths, offsets, label, poll, keep_following if follow else lambda: False)
    except KeyboardInterrupt:  # ^C ends -f, as with tail -f
        pass
    return 0


def follow_logs(paths: list[Path], offsets: dict, label: bool, poll: float, keep_following) -> None:
    import sys
    import time
    while keep_following():
        for path in paths:
            size = path.stat().st_size if path.exists() else 0
            if size < offsets[path]:  # rotated or truncated: start over
                offsets[path] = 0
            if size > offsets[path]:
                with open(path, "rb") as f:
                    f.seek(offsets[path])
                    data = f.read(size - offsets[path])
                offsets[path] = size
                for line in data.decode(errors="replace").splitlines():
                    sys.stdout.write((f"{path.stem}: " if label else "") + masking.mask(line) + "\n")
                sys.stdout.flush()
        time.sleep(poll)


def code_source(settings: Settings, daemon) -> str:
    """Where a daemon's code comes from: its project's release in the venv, its checkout
    ("nova checkout /opt/stack/nova @ 1a2b3c4", "(modified)" when the tree has uncommitted
    changes), or a distro package."""
    from minstack import catalogue
    from minstack.versions import installed_version
    if not daemon.argv or not daemon.argv[0].startswith(str(settings.venv)):
        return "distro package"
    try:
        distribution = catalogue.project_of_service(daemon.service).distribution
    except KeyError:
        distribution = ""
    if not distribution:
        return "venv"
    checkout = checkouts.source_of(Shell(logging.getLogger("minstack.status")), settings.venv, distribution)
    return f"{distribution} {checkout or installed_version(settings.venv, distribution) + ' (release)'}"


def library_sources(settings: Settings) -> list[str]:
    """The libraries the venv has from checkouts (LIBS_FROM_GIT): "oslo-log checkout /opt/stack/oslo.log @ ..."."""
    from minstack import catalogue
    from minstack.versions import canonical, dist_infos
    services = {canonical(p.distribution) for p in catalogue.projects() if p.distribution}
    sh = Shell(logging.getLogger("minstack.status"))
    found = [(name, checkouts.source_of(sh, settings.venv, name)) for name in dist_infos(settings.venv)
             if name not in services]
    return [f"{name} {source}" for name, source in sorted(found) if source]


# ---- ./unstack.py ------------------------------------------------------------------------------
def stop_daemons(supervisor, daemons, log, forget: bool = False, one_by_one: bool = False) -> list:
    """Stop daemons side by side (nova's six each take seconds), or ``one_by_one``, last first (a
    daemon needs the ones before it); the ones that were running.
    ``forget``: also remove what the supervisor keeps for them (systemd units, with --clean)."""
    from concurrent.futures import ThreadPoolExecutor
    daemons = list(daemons)
    if one_by_one:
        stopped = [supervisor.stop(d, log) for d in reversed(daemons)][::-1]
    else:
        with ThreadPoolExecutor(max_workers=max(1, len(daemons))) as pool:
            stopped = list(pool.map(lambda d: supervisor.stop(d, log), daemons))
    if forget:
        for daemon in daemons:
            supervisor.forget(daemon)
    return [d for d, was_running in zip(daemons, stopped) if was_running]


def stop_in_reverse_order(phases: list[Phase], stop, settings=None) -> None:
    """stop(phase) for every phase, each once every phase that requires it is stopped, independent
    ones side by side: nova and neutron together, then libvirt and OVN, ..."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
    deps = dependencies(phases, settings)
    waiting_for = {p.name: {q.name for q in phases if p.name in deps[q.name]} for p in phases}
    by_name = {p.name: p for p in phases}
    with ThreadPoolExecutor(max_workers=max(1, len(phases))) as pool:
        running: dict = {}
        while waiting_for or running:
            for name in [n for n, after in waiting_for.items() if not after]:
                del waiting_for[name]
                running[pool.submit(stop, by_name[name])] = name
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                future.result()  # a phase that failed to stop fails the unstack
                for after in waiting_for.values():
                    after.discard(name)


def unstack_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="unstack.py", description="Stop what stack.py started.")
    parser.add_argument("-c", "--config", help="localrc or local.conf (default: ./localrc, then ./local.conf)")
    parser.add_argument("--all", action="store_true", help="also stop MariaDB, RabbitMQ and memcached")
    parser.add_argument("--clean", action="store_true",
                        help="also remove what minstack created: databases, data, logs, bridges, the venv")
    args = parser.parse_args(argv)
    console = make_console()
    settings = load_or_report(console, args.config, warn=False)
    if settings is None:
        return 2
    lock = take_run_lock(console)
    if lock is None:
        return 4
    setup_logging(settings, "unstack")
    state = State(settings.state_dir / "state.json")
    supervisor = make_supervisor(settings.state_dir / "run", settings.logdir)
    make = make_context_factory(settings, state, supervisor)
    # Every phase, enabled or not: a service disabled since the last stack still gets stopped.
    phases = load_phases()
    stop_all = args.all or args.clean
    started = time.monotonic()

    def stop(phase: Phase) -> None:
        ctx = make(phase)
        phase.stop(ctx)
        for daemon in stop_daemons(supervisor, phase.daemons(ctx), ctx.log, forget=args.clean,
                                   one_by_one=phase.stop_in_reverse_order):
            console.print(f"stopped {daemon.name}")

    stop_in_reverse_order([p for p in phases if not p.keep_running_on_unstack], stop, settings)
    if args.clean:  # while MariaDB still runs, so each service drops its own database
        for phase in reversed([p for wave in waves(phases, settings) for p in wave]):
            phase.clean(make(phase))
    if stop_all:
        stop_in_reverse_order([p for p in phases if p.keep_running_on_unstack], stop, settings)
    if args.clean:
        logging.shutdown()
        for path in (settings.data_dir, settings.logdir):
            if path.exists():
                shutil.rmtree(path)
                console.print(f"removed {path}")
        console.print(f"minstack: clean in {time.monotonic() - started:.0f}s; the next ./stack.py starts from scratch")
    else:
        console.print("minstack: stopped" + ("" if stop_all else " (MariaDB, RabbitMQ and memcached keep "
                                                                "running; --all stops them)"))
    return 0
