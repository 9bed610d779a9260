"""minstack.checkouts and its settings: names, refs, real git repositories in tmp_path, code sources.

No root and no network: the "remotes" are local repositories (a path or a file:// URL).
"""
from __future__ import annotations

import getpass
import json
import logging
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from minstack import checkouts
from minstack.checkouts import Checkout, check_ref, variable_prefix
from minstack.errors import ConfigError, MinstackError
from minstack.phase import Step
from minstack.pipeline import look
from minstack.settings import KEYS, load_settings
from minstack.shell import Shell
from minstack.state import State
from minstack.versions import code_key, data_files, shipped_files

from test_settings import HOST, write

REPO = Path(__file__).resolve().parents[2]
SH = Shell(logging.getLogger("test-checkouts"))


def git(tree: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def commit(tree: Path, path: str, text: str, message: str) -> str:
    (tree / path).parent.mkdir(parents=True, exist_ok=True)
    (tree / path).write_text(text)
    git(tree, "add", "-A")
    git(tree, "commit", "-qm", message)
    return git(tree, "rev-parse", "HEAD")


@pytest.fixture
def upstream(tmp_path) -> SimpleNamespace:
    """A project repository: master tagged 1.0.0, a branch feature, a Gerrit-style change ref."""
    tree = tmp_path / "upstream"
    tree.mkdir()
    git(tree, "init", "-q", "-b", "master")
    base = commit(tree, "setup.cfg", "[metadata]\nname = demo\n", "import")
    git(tree, "tag", "-a", "-m", "1.0.0", "1.0.0")
    git(tree, "checkout", "-q", "-b", "feature")
    feature = commit(tree, "demo/api.py", "MESSAGE = 'feature'\n", "feature")
    git(tree, "checkout", "-q", "master")
    change = commit(tree, "demo/api.py", "MESSAGE = 'change'\n", "a change under review")
    git(tree, "update-ref", "refs/changes/45/12345/3", change)
    git(tree, "reset", "-q", "--hard", base)
    return SimpleNamespace(tree=tree, base=base, feature=feature, change=change)


def settings_for(tmp_path, **values):
    return SimpleNamespace(**{"offline": False, "reclone": False, "git_depth": 0, "stack_user": getpass.getuser(),
                              "checkouts": (), **values})


def checkout_of(upstream, tmp_path, ref: str, repo: str | None = None) -> Checkout:
    return Checkout("demo", "demo", repo or f"file://{upstream.tree}", ref, tmp_path / "dest" / "demo")


def bring(upstream, tmp_path, ref: str, **settings) -> str:
    """What a re-run does: observe, and act when the tree is elsewhere; the HEAD after."""
    checkout = checkout_of(upstream, tmp_path, ref)
    s = settings_for(tmp_path, **settings)
    seen = checkouts.wanted_move(SH, checkout, s)
    if seen:
        checkouts.move(SH, checkout, s, seen)
    return git(checkout.dir, "rev-parse", "HEAD")


# ---- names -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, prefix", [
    ("nova", "NOVA"), ("placement", "PLACEMENT"), ("oslo.log", "OSLOLOG"), ("oslo.versionedobjects",
                                                                            "OSLOVERSIONEDOBJECTS"),
    ("oslo.config", "OSLOCFG"), ("oslo.messaging", "OSLOMSG"), ("python-novaclient", "NOVACLIENT"),
    ("python-openstackclient", "OPENSTACKCLIENT"), ("os-vif", "OS_VIF"), ("glance_store", "GLANCE_STORE"),
    ("keystonemiddleware", "KEYSTONEMIDDLEWARE"), ("osc-placement", "OSC_PLACEMENT")])
def test_variable_names_are_devstacks(name, prefix):
    assert variable_prefix(name) == prefix


def test_every_project_with_a_distribution_has_its_three_keys():
    for prefix in ("KEYSTONE", "GLANCE", "PLACEMENT", "NOVA", "NEUTRON", "HORIZON", "CINDER"):
        assert {f"{prefix}_REPO", f"{prefix}_BRANCH", f"{prefix}_DIR"} <= set(KEYS)
    assert "TEMPEST_REPO" not in KEYS  # not installed by minstack from the venv


@pytest.mark.parametrize("ref", ["master", "stable/2026.2", "34.0.0", "a" * 40, "1a2b3c4",
                                 "refs/changes/34/123434/2", "refs/changes/05/5/1"])
def test_good_refs(ref):
    check_ref(ref)


@pytest.mark.parametrize("ref, problem", [
    ("refs/changes/12/123434/2", "Gerrit keeps it under refs/changes/34/123434/"),
    ("refs/changes/34/123434", "is not a Gerrit change ref"),
    ("feature..x", "is not a git branch"), ("-x", "is not a git branch"), ("a b", "is not a git branch"),
    ("x.lock", "is not a git branch"), ("a:b", "is not a git branch")])
def test_bad_refs(ref, problem):
    with pytest.raises(ValueError, match=problem):
        check_ref(ref)


# ---- settings ---------------------------------------------------------------------------------
def load(tmp_path, text):
    return load_settings(write(tmp_path, text), HOST, environ={})


def problems(tmp_path, text):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return [str(p) for p in caught.value.problems]


def test_nothing_from_git_by_default(tmp_path):
    s = load(tmp_path, "")
    assert s.checkouts == () and s.git_depth == 0 and s.reclone is False


def test_a_project_is_from_git_when_its_repo_or_branch_is_set(tmp_path, upstream):
    subprocess.run(["git", "clone", "-q", "--bare", upstream.tree, tmp_path / "openstack" / "nova.git"], check=True)
    s = load(tmp_path, f"DEST={tmp_path}/stack\nNOVA_BRANCH=refs/changes/45/12345/3\n"
                       f"GLANCE_REPO={upstream.tree}\nGIT_BASE=file://{upstream.tree.parent}/\n")
    by_name = {c.name: c for c in s.checkouts}
    assert by_name["nova"] == Checkout("nova", "nova", f"file://{upstream.tree.parent}/openstack/nova.git",
                                       "refs/changes/45/12345/3", tmp_path / "stack" / "nova")
    assert by_name["glance"].repo == str(upstream.tree) and by_name["glance"].ref == "stable/2026.2"
    assert by_name["glance"].dir == tmp_path / "stack" / "glance"


def test_dir_alone_is_a_tree_used_in_place(tmp_path, upstream):
    s = load(tmp_path, f"NOVA_DIR={upstream.tree}\n")
    assert s.checkouts == (Checkout("nova", "nova", "", "", upstream.tree),)
    assert s.checkouts[0].in_place
    found = problems(tmp_path, f"NOVA_DIR={tmp_path}\n")
    assert found == [f"{tmp_path / 'localrc'}:1: NOVA_DIR={tmp_path} is not a Python project to use in place "
                     "(no setup.cfg, setup.py, pyproject.toml); set NOVA_REPO too to clone one there"]


def test_libraries_from_git_take_devstacks_keys(tmp_path, upstream):
    s = load(tmp_path, f"LIBS_FROM_GIT=oslo.log,python-novaclient,\nOSLOLOG_REPO={upstream.tree}\n"
                       "OSLOLOG_BRANCH=feature\nDEST=/srv/stack\n")
    assert [(c.name, c.repo, c.ref, c.dir) for c in s.checkouts] == [
        ("oslo.log", str(upstream.tree), "feature", Path("/srv/stack/oslo.log")),
        ("python-novaclient", "https://opendev.org/openstack/python-novaclient.git", "stable/2026.2",
         Path("/srv/stack/python-novaclient"))]
    assert s.warnings == ()


def test_bad_checkout_settings_name_their_line(tmp_path):
    localrc = tmp_path / "localrc"
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file").write_text("x")
    found = problems(tmp_path, f"""
        NOVA_BRANCH=refs/changes/1/123434/2
        GLANCE_REPO=ftp://example.com/glance
        LIBS_FROM_GIT=oslo.logg,nova,ALL
        KEYSTONE_REPO=/nowhere/keystone
        NEUTRON_REPO=https://example.com/neutron.git
        NEUTRON_DIR={tmp_path}/junk
        GIT_DEPTH=-1
        """)
    assert found == [
        f"{localrc}:1: NOVA_BRANCH=refs/changes/1/123434/2 is not a Gerrit change ref refs/changes/NN/NNNNNN/P "
        "(e.g. refs/changes/34/123434/2)",
        f"{localrc}:2: GLANCE_REPO=ftp://example.com/glance is not a git URL (https://, git://, ssh://, file://) "
        "or an absolute local path",
        f"{localrc}:3: LIBS_FROM_GIT names oslo.logg, which is not in the 2026.2 lock (2026.2-lock.txt); "
        "did you mean 'oslo-log'?",
        f"{localrc}:3: LIBS_FROM_GIT names nova, a service, not a library: set NOVA_REPO and NOVA_BRANCH "
        "(or NOVA_DIR) instead",
        f"{localrc}:3: LIBS_FROM_GIT=ALL is not supported: name the libraries, e.g. "
        "LIBS_FROM_GIT=oslo.log,python-novaclient",
        f"{localrc}:4: KEYSTONE_REPO: /nowhere/keystone does not exist (the repository of keystone)",
        f"{localrc}:6: {tmp_path}/junk exists and is not a git checkout, so neutron cannot be cloned there; "
        f"move it away, or set only NEUTRON_DIR={tmp_path}/junk to use it as it is",
        f"{localrc}:7: GIT_DEPTH=-1 must be between 0 and 1000000"]


def test_offline_and_error_on_clone_refuse_a_clone_before_anything_changes(tmp_path):
    localrc = tmp_path / "localrc"
    assert problems(tmp_path, f"DEST={tmp_path}\nOFFLINE=True\nNOVA_BRANCH=master\n") == [
        f"{localrc}:2: OFFLINE=True, but nova is not in {tmp_path}/nova and cannot be cloned from "
        "https://opendev.org/openstack/nova.git offline; set NOVA_REPO to a local path"]
    assert problems(tmp_path, f"DEST={tmp_path}\nERROR_ON_CLONE=yes\nNOVA_BRANCH=master\n") == [
        f"{localrc}:2: ERROR_ON_CLONE=True, but nova is not in {tmp_path}/nova and would be cloned from "
        "https://opendev.org/openstack/nova.git; clone it there first"]


def test_a_librarys_keys_without_it_in_libs_from_git_are_ignored_with_a_hint(tmp_path):
    s = load(tmp_path, "OSLOLOG_REPO=/srv/oslo.log\n")
    assert s.checkouts == ()
    assert [w.message for w in s.warnings] == [
        "unknown setting OSLOLOG_REPO (ignored); a library's checkout keys count only when LIBS_FROM_GIT names it"]


# ---- git: clone, fetch, check out -------------------------------------------------------------------
def test_a_branch_is_cloned_and_follows_new_commits(tmp_path, upstream):
    assert bring(upstream, tmp_path, "feature") == upstream.feature
    tree = tmp_path / "dest" / "demo"
    assert git(tree, "rev-parse", "--abbrev-ref", "HEAD") == "feature"  # a branch to commit on, as DevStack
    assert bring(upstream, tmp_path, "feature") == upstream.feature    # nothing new: nothing to do
    assert checkouts.wanted_move(SH, checkout_of(upstream, tmp_path, "feature"), settings_for(tmp_path)) is None
    git(upstream.tree, "checkout", "-q", "feature")
    newer = commit(upstream.tree, "demo/api.py", "MESSAGE = 'newer'\n", "a new commit")
    assert bring(upstream, tmp_path, "feature") == newer


def test_tags_shas_and_gerrit_changes(tmp_path, upstream):
    assert bring(upstream, tmp_path, "1.0.0") == upstream.base
    assert bring(upstream, tmp_path, upstream.feature) == upstream.feature
    assert bring(upstream, tmp_path, "refs/changes/45/12345/3") == upstream.change  # fetched, then FETCH_HEAD
    assert git(tmp_path / "dest" / "demo", "rev-parse", "--abbrev-ref", "HEAD") == "HEAD"  # detached


def test_uncommitted_changes_and_local_commits_are_never_lost(tmp_path, upstream):
    bring(upstream, tmp_path, "feature")
    tree = tmp_path / "dest" / "demo"
    (tree / "demo" / "api.py").write_text("MESSAGE = 'mine'\n")
    with pytest.raises(MinstackError, match=r"has uncommitted changes \(demo/api.py\).*RECLONE=True"):
        bring(upstream, tmp_path, "1.0.0")
    assert (tree / "demo" / "api.py").read_text() == "MESSAGE = 'mine'\n"
    git(tree, "commit", "-qam", "my own work")
    git(upstream.tree, "checkout", "-q", "feature")
    commit(upstream.tree, "demo/other.py", "x = 1\n", "upstream moved on")
    with pytest.raises(MinstackError, match="the local branch feature has commits that .* lacks"):
        bring(upstream, tmp_path, "feature")
    assert bring(upstream, tmp_path, "feature", reclone=True) == git(upstream.tree, "rev-parse", "feature")


def test_a_new_repo_url_is_where_the_next_fetch_comes_from(tmp_path, upstream):
    bring(upstream, tmp_path, "feature")
    fork = tmp_path / "fork"
    subprocess.run(["git", "clone", "-q", upstream.tree, fork], check=True)
    git(fork, "checkout", "-q", "-b", "forked")
    forked = commit(fork, "demo/api.py", "MESSAGE = 'fork'\n", "only in the fork")
    checkout = checkout_of(upstream, tmp_path, "forked", repo=str(fork))
    s = settings_for(tmp_path)
    checkouts.move(SH, checkout, s, checkouts.wanted_move(SH, checkout, s))
    assert git(checkout.dir, "rev-parse", "HEAD") == forked
    assert git(checkout.dir, "remote", "get-url", "origin") == str(fork)


def test_offline_uses_what_is_there(tmp_path, upstream):
    bring(upstream, tmp_path, "feature")
    git(upstream.tree, "checkout", "-q", "feature")
    commit(upstream.tree, "demo/api.py", "MESSAGE = 'not fetched'\n", "offline cannot see this")
    assert bring(upstream, tmp_path, "feature", offline=True) == upstream.feature
    with pytest.raises(MinstackError, match="OFFLINE=True: .* has no nothere"):
        bring(upstream, tmp_path, "nothere", offline=True)


def test_preflight_names_an_unreachable_url_and_a_missing_branch(tmp_path, upstream):
    good = checkout_of(upstream, tmp_path, "feature")
    checkouts.preflight(settings_for(tmp_path, checkouts=(good,)), SH)
    gone = checkout_of(upstream, tmp_path, "feature", repo=f"file://{tmp_path}/gone.git")
    with pytest.raises(MinstackError, match=rf"cannot reach the git repository file://{tmp_path}/gone.git: .*"
                                            r"local clone.*OFFLINE=True.*nothing was changed"):
        checkouts.preflight(settings_for(tmp_path, checkouts=(gone,)), SH)
    missing = checkout_of(upstream, tmp_path, "no-such-branch")
    with pytest.raises(MinstackError, match="DEMO_BRANCH=no-such-branch: .* has no branch, tag or change"):
        checkouts.preflight(settings_for(tmp_path, checkouts=(missing,)), SH)
    checkouts.preflight(settings_for(tmp_path, checkouts=(gone,), offline=True), SH)  # offline: not asked


def test_the_install_key_follows_the_commit(tmp_path, upstream):
    bring(upstream, tmp_path, "1.0.0")
    checkout = checkout_of(upstream, tmp_path, "feature")
    before = checkouts.install_key(SH, checkout)
    assert before.startswith(upstream.base)
    assert checkouts.install_key(SH, checkout) == before
    bring(upstream, tmp_path, "feature")
    assert checkouts.install_key(SH, checkout).startswith(upstream.feature)


def test_a_callable_once_key_is_asked_when_the_step_is_reached(tmp_path):
    state = State(tmp_path / "state.json")
    keys = iter(["one", "one", "two"])
    step = Step("develop demo", lambda: None, once_key=lambda: next(keys))
    first = look(step, state, "venv")
    assert first.skip is None and first.key == "one"
    state.record_step("venv", step.name, first.key)
    assert look(step, state, "venv").skip == "done before"
    assert look(step, state, "venv").skip is None  # a new commit


# ---- the lock, the venv, where code comes from -------------------------------------------------------
def test_the_lock_leaves_out_what_comes_from_git(tmp_path):
    lock = REPO / "files" / "requirements" / "2026.2-lock.txt"
    text = checkouts.lock_without(lock, [Checkout("nova", "nova", "x", "y", tmp_path),
                                         Checkout("oslo.log", "oslo.log", "x", "y", tmp_path)])
    pins = [line for line in text.splitlines() if "==" in line and not line.startswith("#")]
    assert not [p for p in pins if p.startswith(("nova==", "oslo-log=="))]
    assert "python-novaclient==" in text and "oslo-config==" in text
    assert len(pins) == len(checkouts.locked_distributions(lock)) - 2
    assert checkouts.lock_without(lock, []) == lock.read_text()  # nothing from git: the same key as before


def fake_venv(tmp_path, name: str, version: str, tree: Path | None) -> Path:
    """A venv with one distribution, installed editable from tree (None: from a wheel)."""
    venv = tmp_path / "venv"
    info = venv / "lib" / "python3.11" / "site-packages" / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    if tree:
        (info / "direct_url.json").write_text(json.dumps({"url": f"file://{tree}", "dir_info": {"editable": True}}))
    return venv


def test_code_source_release_checkout_and_modified(tmp_path, upstream):
    from minstack.cli import code_source
    from minstack.supervisor import Daemon
    release = fake_venv(tmp_path / "r", "nova", "34.0.0", None)
    daemon = Daemon("nova-api", [str(release / "bin" / "uwsgi")], service="n-api")
    assert code_source(SimpleNamespace(venv=release), daemon) == "nova 34.0.0 (release)"
    bring(upstream, tmp_path, "feature")
    tree = tmp_path / "dest" / "demo"
    venv = fake_venv(tmp_path / "c", "nova", "34.0.1.dev1", tree)
    daemon = Daemon("nova-api", [str(venv / "bin" / "uwsgi")], service="n-api")
    assert code_source(SimpleNamespace(venv=venv), daemon) == f"nova checkout {tree} @ {upstream.feature[:7]}"
    (tree / "demo" / "api.py").write_text("edited\n")
    assert code_source(SimpleNamespace(venv=venv), daemon) == f"nova checkout {tree} @ {upstream.feature[:7]} (modified)"
    assert checkouts.released_again(venv, []) == ["nova"]
    assert checkouts.released_again(venv, [Checkout("nova", "nova", "", "", tree)]) == []


def test_db_syncs_key_on_a_checkouts_migrations(tmp_path, upstream):
    tree = tmp_path / "tree"
    (tree / "demo" / "db" / "migrations" / "versions").mkdir(parents=True)
    (tree / "demo" / "db" / "migrations" / "versions" / "001_init.py").write_text("up = 1\n")
    (tree / "demo" / "api.py").write_text("x = 1\n")
    venv = fake_venv(tmp_path, "nova", "34.0.1.dev1", tree)
    before = code_key(venv, "nova")
    (tree / "demo" / "api.py").write_text("x = 2\n")
    assert code_key(venv, "nova") == before  # code changed, the schema did not
    (tree / "demo" / "db" / "migrations" / "versions" / "002_more.py").write_text("up = 2\n")
    assert code_key(venv, "nova") != before
    assert code_key(fake_venv(tmp_path / "r", "nova", "34.0.0", None), "nova") == "34.0.0"


def test_shipped_files_come_from_a_checkouts_packaging(tmp_path):
    tree = tmp_path / "tree"
    (tree / "etc" / "nova" / "rootwrap.d").mkdir(parents=True)
    for name in ("api-paste.ini", "rootwrap.conf", "rootwrap.d/compute.filters"):
        (tree / "etc" / "nova" / name).write_text(name)
    (tree / "pyproject.toml").write_text('[tool.setuptools.data-files]\n"etc/nova" = ["etc/nova/api-paste.ini", '
                                         '"etc/nova/rootwrap.conf"]\n"etc/nova/rootwrap.d" = ["etc/nova/rootwrap.d/*"]\n')
    venv = fake_venv(tmp_path, "nova", "34.0.1.dev1", tree)
    assert shipped_files(venv, "nova", "etc/nova") == {"api-paste.ini": tree / "etc/nova/api-paste.ini",
                                                       "rootwrap.conf": tree / "etc/nova/rootwrap.conf"}
    assert shipped_files(venv, "nova", "etc/nova/rootwrap.d") == {
        "compute.filters": tree / "etc/nova/rootwrap.d/compute.filters"}
    (tree / "pyproject.toml").unlink()
    (tree / "setup.cfg").write_text("[files]\ndata_files =\n    etc/glance =\n        etc/glance-api-paste.ini\n")
    assert data_files(tree) == {"etc/glance": ["etc/glance-api-paste.ini"]}


def test_a_changed_checkout_restarts_only_the_daemons_that_run_it():
    s = load_settings(None, HOST, environ={})
    ctx = SimpleNamespace(settings=s, sh=SH)
    assert checkouts.daemons_running(ctx, "nova") == ["nova-api", "nova-metadata", "nova-conductor",
                                                      "nova-scheduler", "nova-compute", "nova-novncproxy"]
    assert checkouts.daemons_running(ctx, "openstack_placement") == ["placement-api"]
    library = checkouts.daemons_running(ctx, "oslo.log")  # a library: every daemon in the venv
    assert {"keystone", "glance-api", "placement-api", "nova-api", "nova-compute", "neutron-api",
            "neutron-ovn-agent", "horizon"} <= set(library)
    assert not {"mysql", "rabbitmq", "memcached", "libvirtd", "ovn-northd", "ovs-vswitchd"} & set(library)
