"""masking, the shell wrapper, post-config merging, templates, the process supervisor (no root)."""
import getpass
import logging
import sys
import time
from types import SimpleNamespace
from pathlib import Path

import psutil
import pytest

from minstack import masking, postconfig, templates
from minstack.shell import CommandFailed, Shell
from minstack.supervisor import Daemon, DaemonFailed, ProcessSupervisor


@pytest.fixture(autouse=True)
def no_secrets():
    masking.clear()
    yield
    masking.clear()


def test_mask_covers_raw_and_url_quoted_forms():
    masking.register("pa$$ w@rd/x", "abc")  # too short to mask safely: ignored
    assert masking.mask("pw=pa$$ w@rd/x url=root:pa%24%24%20w%40rd%2Fx@h abc") == \
        "pw=****** url=root:******@h abc"


def test_mask_covers_json_escaped_and_shell_quoted_forms():
    secret = """s3cr "q$t" it's"""
    masking.register(secret)
    import json
    import shlex
    line = f"body={json.dumps({'password': secret})} argv=--password {shlex.quote(secret)}"
    assert masking.mask(line) == 'body={"password": "******"} argv=--password ******'


def test_each_service_connects_as_its_own_account_on_the_base_services_host():
    from types import SimpleNamespace
    s = SimpleNamespace(service_host="10.1.2.3", base_services_host="127.0.0.1", database_password="pw d$",
                        rabbit_password="rb", logdir="/tmp")
    context = templates.common_context(s)
    nova = context["db_url"]("nova_cell1")
    assert nova.startswith("mysql+pymysql://nova:") and nova.endswith("@127.0.0.1/nova_cell1?charset=utf8")
    keystone = context["db_url"]("keystone")
    assert keystone.startswith("mysql+pymysql://keystone:")
    assert keystone.split(":")[2].split("@")[0] != nova.split(":")[2].split("@")[0]  # a password each
    assert "pw" not in keystone and "root" not in keystone
    assert context["transport_url"].endswith("@127.0.0.1:5672/")
    assert context["memcache_servers"] == "127.0.0.1:11211"


def test_masking_filter_masks_formatted_records(tmp_path):
    masking.register("hunter22")
    log = logging.getLogger("test.mask")
    handler = logging.FileHandler(tmp_path / "x.log")
    handler.addFilter(masking.MaskingFilter())
    log.addHandler(handler)
    log.warning("password is %s", "hunter22")
    handler.close()
    assert (tmp_path / "x.log").read_text() == "password is ******\n"


@pytest.fixture
def shell(tmp_path):
    log = logging.getLogger("test.shell")
    log.setLevel(logging.INFO)
    handler = logging.FileHandler(tmp_path / "phase.log")
    handler.addFilter(masking.MaskingFilter())
    log.addHandler(handler)
    yield Shell(log, tmp_path / "phase.log"), tmp_path / "phase.log"
    log.removeHandler(handler)
    handler.close()


def test_shell_logs_command_output_exit_code_and_time(shell):
    sh, path = shell
    masking.register("s3cr3t-value")
    result = sh.run(["sh", "-c", "echo out; echo err >&2", "ignored", "s3cr3t-value"])
    assert result.stdout == "out\n" and result.stderr == "err\n" and result.ok
    text = path.read_text()
    assert "$ sh -c 'echo out; echo err >&2' ignored ******" in text
    assert "  out\n" in text and "  err\n" in text and "-> exit 0 in" in text
    assert "s3cr3t-value" not in text


def test_shell_failure_carries_command_and_tail(shell):
    sh, _ = shell
    with pytest.raises(CommandFailed) as info:
        sh.run(["sh", "-c", "echo first; echo boom >&2; exit 3"])
    assert info.value.result.returncode == 3
    assert "exit code 3" in str(info.value) and "boom" in str(info.value)
    assert sh.run(["false"], check=False).returncode == 1
    assert sh.ok(["true"]) and not sh.ok(["false"])


def test_shell_input_env_cwd_timeout(shell, tmp_path):
    sh, _ = shell
    assert sh.output(["cat"], input="via stdin") == "via stdin"
    assert sh.output(["sh", "-c", "echo $FOO; pwd"], env={"FOO": "bar"}, cwd=tmp_path) == f"bar\n{tmp_path}\n"
    started = time.monotonic()
    result = sh.run(["sleep", "5"], timeout=0.5, check=False)
    assert result.returncode != 0 and time.monotonic() - started < 3


def test_post_config_merge_replaces_adds_and_keeps_comments():
    text = "# head\n[DEFAULT]\ndebug = false\n# note\n\n[database]\nconnection = x\n"
    merged = postconfig.merge_ini(text, [("DEFAULT", "debug", "true"), ("database", "max_retries", "5"),
                                         ("new", "k", "v"), ("DEFAULT", "debug", "last-wins")])
    assert merged == ("# head\n[DEFAULT]\ndebug = last-wins\n# note\n\n[database]\nconnection = x\n"
                      "max_retries = 5\n\n[new]\nk = v\n")


def fake_settings(**overrides):
    values = dict(base_services_host="127.0.0.1", service_host="127.0.0.1", database_password="p$ss w'rd@/", rabbit_password="r@bbit",
                  admin_password='a"dm$in', logdir=Path("/opt/stack/logs"), stack_user="stack",
                  venv=Path("/opt/stack/data/venv"), api_workers=1)
    values.update(overrides)
    return SimpleNamespace(**values)


def test_keystone_conf_escapes_dollar_and_quotes_url():
    text = templates.render("keystone/keystone.conf.j2", fake_settings())
    from minstack.derived_secrets import database_password
    password = database_password(fake_settings(), "keystone")
    assert f"connection = \"mysql+pymysql://keystone:{password}@127.0.0.1/keystone?charset=utf8\"" in text
    assert "transport_url" not in text and "r%40bbit" not in text
    assert "memcache_servers = 127.0.0.1:11211" in text


def test_openrc_quotes_password_for_the_shell(tmp_path):
    import subprocess
    text = templates.render("openrc/openrc.j2", fake_settings(admin_password="it's $x \"q\""), region="RegionOne")
    (tmp_path / "openrc").write_text(text)
    out = subprocess.run(["bash", "-c", f"source {tmp_path}/openrc admin admin; echo \"$OS_PASSWORD|$OS_USERNAME\""],
                         capture_output=True, text=True).stdout
    assert out == "it's $x \"q\"|admin\n"


def test_uwsgi_template():
    text = templates.render("uwsgi.ini.j2", fake_settings(), name="keystone", module="keystone.wsgi.api",
                            bind="127.0.0.1:5000", venv="/v", processes=2, threads=1, chunked_input_limit=0,
                            env={"A": "b"}, pyargv="")
    assert "module = keystone.wsgi.api\nhttp-socket = 127.0.0.1:5000\n" in text
    assert "processes = 2\n" in text and "env = A=b\n" in text and "pyargv" not in text
    assert "chunked-input-limit" not in text
    glance = templates.render("uwsgi.ini.j2", fake_settings(), name="glance-api", module="glance.wsgi.api",
                              bind="127.0.0.1:9292", venv="/v", processes=1, threads=1, chunked_input_limit=2**26,
                              env={}, pyargv="")
    assert "chunked-input-limit = 67108864\n" in glance and "socket-timeout = 30\n" in glance


def test_process_supervisor_start_status_stop(tmp_path):
    sup = ProcessSupervisor(tmp_path / "run", tmp_path / "logs")
    log = logging.getLogger("test.sup")
    me = getpass.getuser()
    daemon = Daemon("sleeper", [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
                    user=me, ready=lambda: "up" in (tmp_path / "logs" / "sleeper.log").read_text())
    assert sup.ensure_running(daemon, log) == "started"
    status = sup.status(daemon)
    assert status.running and status.pid and status.rss_bytes > 0
    assert sup.ensure_running(daemon, log) == "running"
    pid = status.pid
    assert sup.ensure_running(daemon, log, restart=True) == "restarted"
    assert sup.status(daemon).pid != pid
    assert sup.stop(daemon, log)
    assert not sup.status(daemon).running
    assert not sup.stop(daemon, log)


def test_process_supervisor_reports_a_daemon_that_dies(tmp_path):
    sup = ProcessSupervisor(tmp_path / "run", tmp_path / "logs")
    daemon = Daemon("dies", ["sh", "-c", "echo cannot bind; exit 1"], user=getpass.getuser(),
                    ready=lambda: False)
    with pytest.raises(DaemonFailed, match="exited while starting"):
        sup.ensure_running(daemon, logging.getLogger("t"))
    assert "cannot bind" in (tmp_path / "logs" / "dies.log").read_text()


def test_recycled_pid_is_not_ours(tmp_path):
    import json, os
    sup = ProcessSupervisor(tmp_path / "run", tmp_path / "logs")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "x.json").write_text(json.dumps({"pid": os.getpid(), "create_time": 1.0, "argv": []}))
    assert sup.process(Daemon("x", ["true"])) is None


def test_rootwrap_conf_rewrite_points_at_etc_and_appends_venv():
    from minstack.rootwrap import rewrite_conf
    text = "[DEFAULT]\nfilters_path=/etc/nova/rootwrap.d,/usr/share/nova/rootwrap\n" \
           "exec_dirs=/sbin,/usr/sbin,/bin,/usr/bin\nuse_syslog=False\n"
    out = rewrite_conf(text, "nova", Path("/opt/stack/data/venv"))
    assert "filters_path=/etc/nova/rootwrap.d\n" in out
    assert "exec_dirs=/sbin,/usr/sbin,/bin,/usr/bin,/opt/stack/data/venv/bin\n" in out
    assert rewrite_conf(out, "nova", Path("/opt/stack/data/venv")) == out  # idempotent


def test_systemd_supervisor_forget_disables_and_removes_the_unit(tmp_path, monkeypatch):
    """./unstack.py --clean: no minstack-<name>.service stays enabled (remove_unit was never called)."""
    from minstack import supervisor
    calls = []
    monkeypatch.setattr(supervisor.subprocess, "run", lambda argv, **kw: calls.append(argv))
    sup = supervisor.SystemdSupervisor(tmp_path / "run", tmp_path / "logs")
    sup.unit_dir = tmp_path
    daemon = supervisor.Daemon("memcached", ["/usr/bin/memcached"])
    unit = tmp_path / "minstack-memcached.service"
    unit.write_text("[Unit]\n")
    sup.forget(daemon)
    assert not unit.exists()
    assert ["systemctl", "disable", "minstack-memcached.service"] in calls
    assert ["systemctl", "daemon-reload"] in calls


def test_process_supervisor_does_not_wait_for_children_the_daemon_leaves(tmp_path):
    """A daemon that exits on SIGTERM but leaves a child (neutron-ovn-agent's sudo rootwrap daemon
    did: 40 s of every unstack) is stopped in seconds: the children it left get the signal too."""
    sup = ProcessSupervisor(tmp_path / "run", tmp_path / "logs")
    log = logging.getLogger("test.sup")
    daemon = Daemon("parent", ["sh", "-c", "sleep 300 & echo up; trap 'exit 0' TERM; wait"],
                    user=getpass.getuser(), stop_timeout=30,
                    ready=lambda: "up" in (tmp_path / "logs" / "parent.log").read_text())
    sup.ensure_running(daemon, log)
    child = psutil.Process(sup.status(daemon).pid).children()[0]
    started = time.monotonic()
    assert sup.stop(daemon, log)
    assert time.monotonic() - started < 10
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


def test_systemd_units_order_openstack_after_the_base_services(tmp_path):
    """A boot starts MariaDB, RabbitMQ, OVS/OVN and libvirt before the OpenStack services, and a
    shutdown stops them after: every unit that replaces no distro unit is ordered after them."""
    from minstack import supervisor
    sup = supervisor.SystemdSupervisor(tmp_path / "run", tmp_path / "logs")
    api = sup.unit_text(supervisor.Daemon("nova-api", ["/bin/true"], service="n-api"))
    base = sup.unit_text(supervisor.Daemon("mysql", ["/bin/true"], distro_units=("mariadb.service",)))
    after = [line for line in api.splitlines() if line.startswith("After=")]
    assert after and "minstack-mysql.service" in after[0] and "libvirtd.service" in after[0]
    assert "minstack-mysql.service" not in base
    assert "StandardOutput=journal" in api and "RestartSec=" in api and "StartLimitIntervalSec=0" in api


def test_systemd_units_order_ceph_between_the_base_services_and_openstack(tmp_path):
    """cinder-volume and nova-compute's guests need the cluster: Ceph's units come up before every
    OpenStack unit (and go down after), after the base services, and not after one another."""
    from minstack import supervisor
    from minstack.pipeline import phase_module
    sup = supervisor.SystemdSupervisor(tmp_path / "run", tmp_path / "logs")

    def after(d) -> list[str]:
        [line] = [line for line in sup.unit_text(d).splitlines() if line.startswith("After=")]
        return line.split("=", 1)[1].split()
    compute = after(supervisor.Daemon("nova-compute", ["/bin/true"], service="n-cpu"))
    assert {"minstack-ceph-mon.service", "minstack-ceph-osd.service", "libvirtd.service"} <= set(compute)
    mon = after(supervisor.Daemon("ceph-mon", ["/bin/true"], service="ceph"))
    assert "minstack-mysql.service" in mon and not [unit for unit in mon if "ceph" in unit]
    from test_ceph import context
    ceph = phase_module("ceph")
    daemons = ceph.PHASE.daemons(context(tmp_path))
    assert {d.service for d in daemons} == {supervisor.STORAGE_SERVICE}
    # the mon retires Debian's ceph-crash.service, and keeps its place after the base services
    assert "ceph-crash.service" in daemons[0].distro_units
    assert "minstack-mysql.service" in after(daemons[0])
    assert [f"minstack-{name}.service" for name in (ceph.MON, ceph.MGR, ceph.OSD)] == list(supervisor.STORAGE_UNITS)
