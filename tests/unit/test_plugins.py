"""minstack plugins (minstack/plugins.py): enable_plugin lines, the contract, refusals, git URLs.

The shipped example (plugins/barbican) is loaded for real; the "remotes" are git repositories
built in tmp_path (no network).  Every test leaves no plugin enabled behind it.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from minstack import apt, catalogue, mysql, plugins, services, templates
from minstack.errors import ConfigError
from minstack.pipeline import load_phases, select
from minstack.settings import load_settings

from test_settings import HOST, write

REPO = Path(__file__).resolve().parents[2]
BARBICAN = REPO / "plugins" / "barbican"


@pytest.fixture(autouse=True)
def no_plugins_after():
    yield
    plugins.activate([])


def load(tmp_path, text):
    return load_settings(write(tmp_path, text), HOST, environ={})


def problems(tmp_path, text) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return [str(problem) for problem in caught.value.problems]


def git_repo(source: Path, tree: Path) -> str:
    """A git repository with source's files, committed on master: its file:// URL."""
    shutil.copytree(source, tree)
    for args in (["init", "-q", "-b", "master"], ["add", "-A"],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "plugin"]):
        subprocess.run(["git", "-C", str(tree), *args], check=True, capture_output=True)
    return f"file://{tree}"


# ---- the shipped example, from a path ----------------------------------------------------------
def test_barbican_plugin_joins_catalogue_services_phases_and_accounts(tmp_path):
    s = load(tmp_path, f"enable_plugin barbican {BARBICAN}\n")
    assert [p.name for p in s.plugins] == ["barbican"]
    assert "barbican-svc" in s.enabled_services            # enable_plugin enables its default services
    assert catalogue.project("barbican").plugin == "barbican"
    assert catalogue.ports()["barbican-api"] == 9311
    assert catalogue.url(s, "barbican-api") == f"http://{s.service_host}:9311"
    assert mysql.accounts()["barbican"] == (("barbican-svc",), ("barbican",))
    phase = next(p for p in select(load_phases(), s) if p.name == "barbican")
    assert set(phase.requires) >= {"mysql", "venv", "accounts"}
    assert [d.name for d in phase.daemons(SimpleNamespace(settings=s))] == ["barbican-api"]
    assert s.plugins[0].requirements == ("barbican==23.0.0", "python-barbicanclient==7.6.0")
    assert templates.environment().get_template("barbican/barbican.conf.j2")  # found after minstack's own
    assert "barbican" in services.meta_names()


def test_plugin_path_relative_to_the_localrc(tmp_path):
    shutil.copytree(BARBICAN, tmp_path / "plugins" / "barbican")
    s = load(tmp_path, "enable_plugin barbican plugins/barbican\n")
    assert s.plugins[0].root == tmp_path / "plugins" / "barbican"


def test_top_dir_is_minstacks_directory(tmp_path):
    s = load(tmp_path, "enable_plugin barbican $TOP_DIR/plugins/barbican\n")
    assert s.plugins[0].root == BARBICAN and s.plugins[0].source == str(BARBICAN)


def test_disable_service_after_enable_plugin_wins(tmp_path):
    s = load(tmp_path, f"enable_plugin barbican {BARBICAN}\ndisable_service barbican\n")
    assert "barbican-svc" not in s.enabled_services
    assert not [p for p in select(load_phases(), s) if p.name == "barbican"]


def test_without_enable_plugin_nothing_of_the_plugin_is_known(tmp_path):
    load(tmp_path, f"enable_plugin barbican {BARBICAN}\n")
    s = load(tmp_path, "X_UNUSED=1\n")
    assert "barbican" not in [p.name for p in catalogue.projects()]
    assert "barbican" not in [p.name for p in load_phases()]
    assert "barbican-svc" not in s.enabled_services


def test_plugin_services_without_the_plugin_are_unknown(tmp_path):
    found = problems(tmp_path, "enable_service barbican-svc\n")
    assert found == [f"{tmp_path / 'localrc'}:1: unknown service 'barbican-svc'"]


def test_plugin_debs_lists_are_found(tmp_path):
    tree = tmp_path / "p"
    shutil.copytree(BARBICAN, tree)
    (tree / "minstack-plugin" / "debs").mkdir()
    (tree / "minstack-plugin" / "debs" / "barbican-extra").write_text("# what it needs\nlibfoo1 libbar2\n")
    load(tmp_path, f"enable_plugin barbican {tree}\n")
    assert apt.read_list("barbican-extra") == ["libfoo1", "libbar2"]
    assert "iproute2" in apt.read_list("general")   # minstack's own lists first


# ---- refusals, each at its line, before anything changes ----------------------------------------
def test_devstack_shell_plugin_is_refused(tmp_path):
    tree = tmp_path / "barbican-src"
    (tree / "devstack").mkdir(parents=True)
    (tree / "devstack" / "plugin.sh").write_text("echo would run as root\n")
    found = problems(tmp_path, f"X=1\nenable_plugin barbican {tree}\n")
    assert len(found) == 1
    assert found[0].startswith(f"{tmp_path / 'localrc'}:2: enable_plugin barbican: {tree} is a DevStack plugin "
                               "(devstack/plugin.sh): shell code, which minstack never runs")
    assert "nothing was changed" in found[0]
    assert f"enable_plugin barbican {BARBICAN}" in found[0]           # the shipped plugin is suggested


def test_a_tree_that_is_no_plugin_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    found = problems(tmp_path, f"enable_plugin foo {tmp_path / 'empty'}\n")
    assert found == [f"{tmp_path / 'localrc'}:1: enable_plugin foo: {tmp_path / 'empty'} has no "
                     "minstack-plugin/plugin.py: it is not a minstack plugin (see README \"Plugins\")"]


def test_missing_path_and_ref_on_a_path_are_refused(tmp_path):
    found = problems(tmp_path, f"enable_plugin foo {tmp_path / 'nowhere'}\nenable_plugin barbican {BARBICAN} v1\n")
    assert found[0].endswith(f"enable_plugin foo: {tmp_path / 'nowhere'} is not a directory")
    assert "a path is used as it is, so REF v1 cannot be checked out" in found[1]


def test_a_plugin_that_breaks_the_contract_is_refused(tmp_path):
    tree = tmp_path / "p"
    shutil.copytree(BARBICAN, tree)
    (tree / "minstack-plugin" / "phases" / "barbican.py").unlink()
    found = problems(tmp_path, f"enable_plugin barbican {tree}\n")
    assert found[0].endswith("PROJECTS name phases it does not have: barbican")
    (tree / "minstack-plugin" / "plugin.py").write_text("raise RuntimeError('boom')\n")
    found = problems(tmp_path, f"enable_plugin barbican {tree}\n")
    assert found[0].endswith("plugin.py: RuntimeError: boom")


def test_a_plugin_may_not_take_a_builtin_service_name(tmp_path):
    tree = tmp_path / "p"
    shutil.copytree(BARBICAN, tree)
    plugin_py = tree / "minstack-plugin" / "plugin.py"
    plugin_py.write_text(plugin_py.read_text().replace('"barbican-svc": "Barbican', '"n-api": "Barbican'))
    found = problems(tmp_path, f"enable_plugin barbican {tree}\n")
    assert found[0].endswith("service names already taken: n-api")


def test_the_same_plugin_twice_is_refused(tmp_path):
    found = problems(tmp_path, f"enable_plugin barbican {BARBICAN}\nenable_plugin barbican {BARBICAN}\n")
    assert found == [f"{tmp_path / 'localrc'}:2: enable_plugin barbican: already enabled at line 1"]


def test_devstack_plugin_for_a_project_minstack_will_install_itself(tmp_path):
    project = next(p for p in catalogue.PROJECTS if p.devstack_plugin == "heat")
    text = "enable_plugin heat https://opendev.org/openstack/heat\n"
    if project.supported:
        s = load(tmp_path, text)
        assert set(project.services) <= s.enabled_services
        assert any("minstack installs heat itself" in w.message for w in s.warnings)
    else:
        assert problems(tmp_path, text) == [
            f"{tmp_path / 'localrc'}:1: enable_plugin heat: heat is DevStack's plugin for heat, which minstack "
            "will install itself; this minstack does not yet"]


# ---- git URLs -----------------------------------------------------------------------------------
def test_url_plugin_is_cloned_by_fetch_then_loaded(tmp_path):
    url = git_repo(BARBICAN, tmp_path / "remote")
    dest = tmp_path / "dest"
    text = f"DEST={dest}\nenable_plugin barbican {url}\n"
    s = load(tmp_path, text)                          # loading reads only: not cloned yet, left out
    assert [line.name for line in s.unfetched_plugins] == ["barbican"] and not s.plugins
    assert "barbican-svc" not in s.enabled_services
    assert any("not cloned yet" in w.message for w in s.warnings)
    assert not dest.exists()
    assert plugins.fetch(s) == [f"cloned plugin barbican from {url} into {dest / 'barbican'}"]
    s = load(tmp_path, text)
    assert [p.root for p in s.plugins] == [dest / "barbican"] and s.plugins[0].commit
    assert "barbican-svc" in s.enabled_services


def test_url_of_a_devstack_plugin_leaves_nothing_behind(tmp_path):
    source = tmp_path / "src"
    (source / "devstack").mkdir(parents=True)
    (source / "devstack" / "plugin.sh").write_text("true\n")
    url = git_repo(source, tmp_path / "remote")
    dest = tmp_path / "dest"
    s = load(tmp_path, f"DEST={dest}\nenable_plugin foo {url}\n")
    with pytest.raises(plugins.PluginError, match="is a DevStack plugin"):
        plugins.fetch(s)
    assert not dest.exists() or not list(dest.iterdir())


def test_unreachable_plugin_url_fails_fast_naming_it(tmp_path):
    dest = tmp_path / "dest"
    s = load(tmp_path, f"DEST={dest}\nenable_plugin barbican http://127.0.0.1:9/barbican.git\n")
    started = time.monotonic()
    with pytest.raises(plugins.PluginError) as caught:
        plugins.fetch(s)
    assert time.monotonic() - started < 25
    assert "cannot reach the git repository http://127.0.0.1:9/barbican.git" in str(caught.value)
    assert "nothing was changed" in str(caught.value)
    assert not dest.exists() or not list(dest.iterdir())


def test_offline_never_clones(tmp_path):
    url = git_repo(BARBICAN, tmp_path / "remote")
    s = load(tmp_path, f"DEST={tmp_path / 'dest'}\nOFFLINE=True\nenable_plugin barbican {url}\n")
    with pytest.raises(plugins.PluginError, match="OFFLINE=True and .* is not cloned yet"):
        plugins.fetch(s)
