#!/usr/bin/env python3
"""Measure installing a minstack release lock with pip and with uv.

Re-measures, on this machine, the figures minstack's choice of installer
rests on:

  * creating an empty venv: ``python3 -m venv`` vs ``uv venv``;
  * ``pip install -r LOCK`` into a fresh venv, cold (empty pip cache) and
    warm (cache kept from the cold run, new venv);
  * ``uv pip install -r LOCK --python VENV/bin/python`` likewise, cold
    (empty UV_CACHE_DIR) and warm, plus a warm run with --offline: the
    cache-only figure, i.e. what warm costs when the index's HTTP caching
    headers let uv trust its cache (see "cache headers" below);
  * optionally ``pip-latest``: the same as pip after upgrading the venv's
    pip (Debian 12's venv ships pip 23.0.1, which installs sdists without
    a pyproject.toml, e.g. uwsgi, with the legacy ``setup.py install`` and
    so recompiles them on every run, warm or not).

For each install it records wall seconds, the venv's size as ``du -sm``
counts it, how many distributions ended up in the venv, which packages were
built from an sdist during that run (a warm run that still compiles uwsgi or
libvirt-python has not cached the built wheel), and the verdict of
``pip check`` / ``uv pip check``.

Pip and uv run in a clean environment: every PIP_* and UV_* variable is
dropped, PIP_CONFIG_FILE is os.devnull (no pip.conf at all, so no local
indexes or constraints) and UV_NO_CONFIG=1, so the figures are what a user
with a stock setup gets from PyPI.

Everything happens in one scratch directory created with mkdtemp inside
--workdir (default: the system temp dir); only that directory is removed at
the end (--keep leaves it for inspection). Nothing else is written.

Cache headers: uv re-validates a cached sdist over HTTP and, when the
response carries no Cache-Control/ETag/Last-Modified (some mirrors and
proxies strip them), takes it as a new revision and rebuilds it, so a warm
run then still compiles uwsgi and libvirt-python; pip's HTTP cache stores
nothing at all then, so its warm run downloads every wheel again. The
result records what headers the index sent ("index_cache_headers") so the
warm figures can be read right.

Output: a human table on stderr and a JSON object on stdout (or in --json).

Stdlib only; needs the Python the services use (default /usr/bin/python3),
the build deps of the sdists in the lock (gcc, python3-dev, pkg-config,
libvirt-dev) and network access to PyPI. If --uv is not given and no ``uv``
is on PATH, uv is installed with pip into the scratch directory first (not
timed).

Example:
    python3 tools/bench_install.py --release 2026.2 --which pip,uv \
        --workdir /tmp > bench.json
    python3 tools/bench_install.py --which pip,pip-latest,uv
"""

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Lines that say a package was built from an sdist during the run.
#   pip: "  Building wheel for uwsgi (pyproject.toml): started"
#   uv:  "   Built uwsgi==2.0.31" (also "Building uwsgi==2.0.31")
#   pip < 23.1 without `wheel`: "  Running setup.py install for uwsgi: ..."
BUILT_RES = {
    "pip": re.compile(r"(?:Building wheel for|Running setup\.py install for)"
                      r" (\S+?)(?::| \()"),
    "uv": re.compile(r"^\s*Built (\S+?)(?:==|\s@\s)", re.MULTILINE),
}
# uv's own phase timings, e.g. "Bytecode compiled 18799 files in 23.40s".
#   (durations over a minute read "1m 02s")
UV_PHASES = re.compile(r"^(Resolved|Prepared|Installed|Bytecode compiled) "
                       r"(\d+) \w+ in (?:(\d+)m )?([\d.]+)(ms|s)$",
                       re.MULTILINE)
INDEX_PROBE = "https://pypi.org/simple/pip/"


def log(msg):
    print("[bench] " + msg, file=sys.stderr, flush=True)


def clean_env(**extra):
    """Environment without any pip/uv configuration of this machine."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "UV_"))
        and k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME",
                      "CONDA_PREFIX")
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    env["UV_NO_CONFIG"] = "1"
    env.update(extra)
    return env


def cpu_children():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run(cmd, env, logfile, stats=None):
    """Run cmd, output to logfile; return (wall seconds, rc, output).

    If stats is a dict, also put in it the CPU seconds (user+sys) the
    command and everything it waited for used -- less sensitive than wall
    time to other load on the machine -- and the 1-minute load average
    just before the start (a high one means the wall time is inflated).
    """
    load = os.getloadavg()[0]
    cpu0 = cpu_children()
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    wall = time.monotonic() - t0
    if stats is not None:
        stats["cpu_seconds"] = round(cpu_children() - cpu0, 1)
        stats["loadavg_before"] = round(load, 2)
    with open(logfile, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n" + proc.stdout)
    return wall, proc.returncode, proc.stdout


def du_mb(path):
    """Disk usage in MiB, rounded up, each inode counted once (du -sm)."""
    seen = set()
    blocks = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            blocks += st.st_blocks
    st = os.lstat(path)
    blocks += st.st_blocks
    return -(-blocks * 512 // (1024 * 1024))


def count_dists(venv):
    """Installed distributions (.dist-info, or .egg-info from legacy pip)."""
    n = 0
    lib = os.path.join(venv, "lib")
    for root, dirs, files in os.walk(lib):
        if os.path.basename(root) == "site-packages":
            n += sum(1 for d in dirs + files
                     if d.endswith((".dist-info", ".egg-info")))
            dirs[:] = []
    return n


def probe_cache_headers():
    """Caching headers the package index sends (one HEAD request)."""
    want = ("cache-control", "etag", "last-modified", "age", "x-cache-status")
    try:
        req = urllib.request.Request(INDEX_PROBE, method="HEAD")
        with urllib.request.urlopen(req, timeout=30) as resp:
            got = {k.lower(): v for k, v in resp.getheaders()
                   if k.lower() in want}
    except Exception as e:  # noqa: BLE001 - informative only
        return {"url": INDEX_PROBE, "error": str(e)}
    got["url"] = INDEX_PROBE
    got["validators"] = any(k in got for k in
                            ("cache-control", "etag", "last-modified"))
    return got


def tool_version(cmd, env):
    try:
        out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True).stdout
        return out.strip().splitlines()[0] if out.strip() else "?"
    except OSError as e:
        return "unavailable: %s" % e


def find_uv(args, scratch):
    if args.uv:
        return args.uv
    found = shutil.which("uv")
    if found:
        return found
    log("no uv on PATH: installing uv with pip into the scratch dir")
    boot = os.path.join(scratch, "uv-bootstrap")
    env = clean_env(PIP_CACHE_DIR=os.path.join(scratch, "uv-bootstrap-cache"))
    subprocess.run([args.python, "-m", "venv", boot], env=env, check=True)
    spec = "uv==%s" % args.uv_version if args.uv_version else "uv"
    subprocess.run([os.path.join(boot, "bin", "pip"), "install", "-q", spec],
                   env=env, check=True)
    return os.path.join(boot, "bin", "uv")


def bench_venv_creation(args, uv, scratch):
    """Time creating an empty venv each way (best of --repeat)."""
    out = {}
    env = clean_env(UV_CACHE_DIR=os.path.join(scratch, "uv-cache-venv"))
    variants = [("python -m venv", lambda d: [args.python, "-m", "venv", d]),
                ("python -m venv --without-pip",
                 lambda d: [args.python, "-m", "venv", "--without-pip", d])]
    if uv:
        variants.append(("uv venv", lambda d: [uv, "venv", "-q", "--python",
                                               args.python, d]))
    for name, mk in variants:
        times = []
        for i in range(args.repeat):
            d = os.path.join(scratch, "venv-create")
            wall, rc, outp = run(mk(d), env,
                                 os.path.join(scratch, "logs",
                                              "venv-create.log"))
            if rc != 0:
                raise SystemExit("%s failed:\n%s" % (name, outp))
            times.append(wall)
            size = du_mb(d)
            shutil.rmtree(d)
        out[name] = {"seconds": round(min(times), 2), "size_mb": size}
        log("%-30s %6.2fs  %4d MB" % (name, min(times), size))
    return out


def bench_install(args, which, phase, uv, lock, scratch):
    """One install run.

    which: pip, pip-latest or uv; phase: cold (that tool's cache emptied
    first), warm (cache kept from the cold run, new venv) or warm-offline
    (uv only: warm, with --offline so nothing is re-validated).
    """
    name = "%s-%s" % (which, phase)
    venv = os.path.join(scratch, "venv-" + name)
    cache = os.path.join(scratch, "cache-" + which)
    if phase == "cold" and os.path.exists(cache):
        shutil.rmtree(cache)
    os.makedirs(cache, exist_ok=True)
    logfile = os.path.join(scratch, "logs", name + ".log")
    result = {}
    # Same kind of target venv for every run (made outside the timing), so
    # only the install differs.
    subprocess.run([args.python, "-m", "venv", venv], env=clean_env(),
                   check=True)
    py = os.path.join(venv, "bin", "python")
    pip = os.path.join(venv, "bin", "pip")
    if which == "pip-latest":
        # Not timed; its own cache so the measured cache stays cold.
        env = clean_env(PIP_CACHE_DIR=os.path.join(scratch, "cache-pipup"))
        wall, rc, out = run([pip, "install", "--disable-pip-version-check",
                             "--upgrade", "pip"], env,
                            os.path.join(scratch, "logs",
                                         name + "-upgrade.log"))
        if rc != 0:
            raise SystemExit("upgrading pip failed:\n" + out)
        result["pip_upgrade_seconds"] = round(wall, 1)
    if which in ("pip", "pip-latest"):
        env = clean_env(PIP_CACHE_DIR=cache)
        cmd = [pip, "install", "--disable-pip-version-check", "-r", lock]
        check = [pip, "check"]
        result["pip_version"] = tool_version(
            [pip, "--version"], env).split(" from ")[0]
        kind = "pip"
    else:
        env = clean_env(UV_CACHE_DIR=cache)
        cmd = [uv, "pip", "install", "--python", py, "-r", lock]
        cmd += args.uv_args.split()
        if phase == "warm-offline":
            cmd.append("--offline")
        check = [uv, "pip", "check", "--python", py]
        kind = "uv"
    log("%s: %s" % (name, " ".join(cmd)))
    wall, rc, output = run(cmd, env, logfile, stats=result)
    result.update({
        "command": " ".join(cmd),
        "seconds": round(wall, 1),
        "rc": rc,
        "log": logfile,
        "built_from_sdist": sorted(set(
            m.lower() for m in BUILT_RES[kind].findall(output))),
    })
    if kind == "uv":
        result["uv_phases"] = {
            m[0].lower(): {"count": int(m[1]),
                           "seconds": round(int(m[2] or 0) * 60 + float(m[3])
                                            / (1000 if m[4] == "ms" else 1),
                                            2)}
            for m in UV_PHASES.findall(output)}
    if rc != 0:
        log("%s FAILED (rc=%d), see %s" % (name, rc, logfile))
        result["tail"] = output.splitlines()[-20:]
    else:
        result["venv_mb"] = du_mb(venv)
        result["cache_mb"] = du_mb(cache)
        result["dists"] = count_dists(venv)
        c = subprocess.run(check, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        result["check_ok"] = c.returncode == 0
        result["check"] = c.stdout.strip().splitlines()[-3:]
        log("%s: %.1fs, venv %d MB, %d dists, built %s, check %s"
            % (name, wall, result["venv_mb"], result["dists"],
               ",".join(result["built_from_sdist"]) or "-",
               "ok" if result["check_ok"] else "FAILED"))
    if not args.keep:
        shutil.rmtree(venv)
    return name, result


def table(res):
    rows = [("run", "wall s", "cpu s", "load", "venv MB", "cache MB",
             "dists", "check", "built from sdist", "notes")]
    for name, r in res["installs"].items():
        notes = []
        if "pip_version" in r:
            notes.append(r["pip_version"])
        ph = r.get("uv_phases", {})
        for key, label in (("prepared", "prepare"),
                           ("installed", "link"),
                           ("bytecode compiled", "pyc")):
            if key in ph:
                notes.append("%s %.1fs" % (label, ph[key]["seconds"]))
        rows.append((name, "%.1f" % r["seconds"],
                     "%.1f" % r.get("cpu_seconds", 0),
                     "%.1f" % r.get("loadavg_before", 0),
                     str(r.get("venv_mb", "-")), str(r.get("cache_mb", "-")),
                     str(r.get("dists", "-")),
                     "ok" if r.get("check_ok") else "FAIL",
                     ",".join(r["built_from_sdist"]) or "-",
                     ", ".join(notes)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    hdr = res["index_cache_headers"]
    lines[:0] = [
        "release %s, %s, %s, %s" % (res["release"], res["python"],
                                    res["pip"] or "-", res["uv"] or "no uv"),
        "index %s caching headers: %s" % (
            hdr.get("url"),
            "error: " + hdr["error"] if "error" in hdr else
            ("present" if hdr["validators"] else
             "NONE (warm runs re-download/rebuild)")),
        "",
    ]
    lines.append("(cpu s: user+sys of the install and its children; load: "
                 "1-min load average at the start,")
    lines.append(" other work on the machine inflates wall s when it is "
                 "above ~0.5)")
    lines.append("")
    lines.append("empty venv creation (best of %d):" % res["repeat"])
    for name, r in res["venv_creation"].items():
        lines.append("  %-30s %6.2f s  %4d MB" % (name, r["seconds"],
                                                  r["size_mb"]))
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--release", default="2026.2",
                   help="release whose lock to install (default: 2026.2)")
    p.add_argument("--lock", help="lock file (default: "
                   "files/requirements/RELEASE-lock.txt in this repo)")
    p.add_argument("--which", default="pip,uv",
                   help="comma-separated installers: pip (the venv's own "
                   "pip), pip-latest (venv's pip upgraded first), uv "
                   "(default: pip,uv)")
    p.add_argument("--workdir", default=tempfile.gettempdir(),
                   help="where to create the scratch dir (default: %(default)s)")
    p.add_argument("--python", default="/usr/bin/python3",
                   help="interpreter for the venvs (default: %(default)s)")
    p.add_argument("--uv", help="uv binary (default: uv on PATH, else "
                   "installed with pip into the scratch dir)")
    p.add_argument("--uv-version", help="uv version to bootstrap")
    p.add_argument("--uv-args", default="--compile-bytecode --link-mode copy",
                   help="extra uv pip install args; the default makes uv "
                   "do what pip does (byte-compile, own copies of files) "
                   "(default: %(default)s)")
    p.add_argument("--repeat", type=int, default=3,
                   help="tries per venv-creation timing (default: 3)")
    p.add_argument("--json", help="also write the JSON result here")
    p.add_argument("--keep", action="store_true",
                   help="keep the scratch dir (venvs, caches, logs)")
    args = p.parse_args()

    which = [w.strip() for w in args.which.split(",") if w.strip()]
    bad = set(which) - {"pip", "pip-latest", "uv"}
    if bad or not which:
        p.error("--which takes pip, pip-latest, uv; not %s" % ",".join(bad))
    lock = os.path.abspath(args.lock or os.path.join(
        REPO, "files", "requirements", args.release + "-lock.txt"))
    if not os.path.isfile(lock):
        p.error("no lock file %s" % lock)
    if not os.path.isdir(args.workdir):
        p.error("--workdir %s is not a directory" % args.workdir)

    scratch = tempfile.mkdtemp(prefix="ms-bench-", dir=args.workdir)
    os.makedirs(os.path.join(scratch, "logs"))
    log("scratch dir %s" % scratch)
    try:
        uv = find_uv(args, scratch) if "uv" in which else None
        res = {
            "release": args.release,
            "lock": lock,
            "python": tool_version([args.python, "-VV"], clean_env()),
            "pip": None,
            "uv": tool_version([uv, "--version"], clean_env()) if uv else None,
            "host": {"cpus": os.cpu_count(), "machine": platform.machine(),
                     "system": platform.platform()},
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "repeat": args.repeat,
            "index_cache_headers": probe_cache_headers(),
            "venv_creation": bench_venv_creation(args, uv, scratch),
            "installs": {},
        }
        for w in which:
            phases = ["cold", "warm"] + (["warm-offline"] if w == "uv" else [])
            for phase in phases:
                name, r = bench_install(args, w, phase, uv, lock, scratch)
                res["installs"][name] = r
        # The pip the venvs come with (ensurepip's), for the record.
        tmpv = os.path.join(scratch, "venv-pipversion")
        subprocess.run([args.python, "-m", "venv", tmpv], env=clean_env(),
                       check=True)
        res["pip"] = tool_version([os.path.join(tmpv, "bin", "pip"),
                                   "--version"], clean_env()).split(" from ")[0]
        shutil.rmtree(tmpv)
        res["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    finally:
        if args.keep:
            log("kept %s" % scratch)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    if args.keep:
        res["scratch"] = scratch
    else:
        for r in res["installs"].values():
            r.pop("log", None)
    print(table(res), file=sys.stderr)
    text = json.dumps(res, indent=2, sort_keys=True)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    failed = [n for n, r in res["installs"].items()
              if r["rc"] != 0 or not r.get("check_ok")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
