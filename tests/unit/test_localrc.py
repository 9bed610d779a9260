"""minstack.localrc: DevStack's localrc / local.conf, parsed and never run."""
import textwrap

import pytest

from minstack.errors import ConfigError
from minstack.localrc import SHELL_HINT, PostConfig, ServiceOp, parse_localrc


def write(tmp_path, text, name="localrc"):
    """Write text (dedented; a first empty line from a triple-quoted string dropped)."""
    text = textwrap.dedent(text)
    path = tmp_path / name
    path.write_text(text[1:] if text.startswith("\n") else text)
    return path


def parse(tmp_path, text, environ=None, name="localrc"):
    path = write(tmp_path, text, name)
    return parse_localrc(path, environ if environ is not None else {})


def values(tmp_path, text, environ=None):
    return {key: s.value for key, s in parse(tmp_path, text, environ).values.items()}


def problems(tmp_path, text, environ=None, name="localrc"):
    path = write(tmp_path, text, name)
    with pytest.raises(ConfigError) as caught:
        parse_localrc(path, environ if environ is not None else {})
    return path, [str(problem) for problem in caught.value.problems]


# ---- values, quotes, escapes ----------------------------------------------------------------
def test_plain_and_quoted_values(tmp_path):
    assert values(tmp_path, """
        A=plain
        B="double quoted, with spaces"
        C='single $A "quoted"'
        D=
        E=""
    """) == {"A": "plain", "B": "double quoted, with spaces", "C": 'single $A "quoted"', "D": "", "E": ""}


def test_escapes_in_double_quotes(tmp_path):
    assert values(tmp_path, r"""
        A="say \"hi\" for \$5 \\ done"
        B="keep \n and \x as written"
        C="tick \` ok"
    """) == {"A": 'say "hi" for $5 \\ done', "B": r"keep \n and \x as written", "C": "tick ` ok"}


def test_escapes_unquoted(tmp_path):
    assert values(tmp_path, r"""
        A=a\ b\$c\"d
    """) == {"A": 'a b$c"d'}


def test_setting_records_file_and_line(tmp_path):
    result = parse(tmp_path, """
        # comment

        HOST_IP=10.1.2.3
    """)
    setting = result.values["HOST_IP"]
    assert (setting.value, setting.file, setting.line) == ("10.1.2.3", str(tmp_path / "localrc"), 3)


def test_later_assignment_wins(tmp_path):
    result = parse(tmp_path, """
        A=1
        A=2
    """)
    assert (result.values["A"].value, result.values["A"].line) == ("2", 2)


def test_export_is_tolerated(tmp_path):
    assert values(tmp_path, """
        export A=1
        export B="two" C=3
        export A
    """) == {"A": "1", "B": "two", "C": "3"}


def test_plus_equals_appends(tmp_path):
    assert values(tmp_path, """
        A=one
        A+=",two"
        B+=x
    """) == {"A": "one,two", "B": "x"}


def test_windows_line_endings(tmp_path):
    path = tmp_path / "localrc"
    path.write_bytes(b"A=1\r\nB='two'\r\n")
    assert {k: s.value for k, s in parse_localrc(path, {}).values.items()} == {"A": "1", "B": "two"}


# ---- comments ------------------------------------------------------------------------------
def test_comments(tmp_path):
    assert values(tmp_path, """
        # a comment
          # an indented comment
        A=1 # trailing note
        B="x # not a comment" # but this is
        C=a#b
        D='#'
    """) == {"A": "1", "B": "x # not a comment", "C": "a#b", "D": "#"}


# ---- expansion -----------------------------------------------------------------------------
def test_expansion_forms(tmp_path):
    assert values(tmp_path, """
        DEST=/srv/stack
        A=$DEST/a
        B="${DEST}/b"
        C="${UNSET:-fallback}"
        D=${DEST:-fallback}
        E="${NEW:=made}-$NEW"
    """) == {"DEST": "/srv/stack", "A": "/srv/stack/a", "B": "/srv/stack/b", "C": "fallback",
             "D": "/srv/stack", "NEW": "made", "E": "made-made"}


def test_colon_dash_versus_dash_with_empty_value(tmp_path):
    assert values(tmp_path, """
        EMPTY=
        A=${EMPTY:-default}
        B=${EMPTY-default}
        C=${UNSET-default}
    """) == {"EMPTY": "", "A": "default", "B": "", "C": "default"}


def test_default_may_use_variables(tmp_path):
    assert values(tmp_path, """
        BASE=/x
        A="${UNSET:-$BASE/y}"
    """) == {"BASE": "/x", "A": "/x/y"}


def test_localrc_values_before_environment(tmp_path):
    environ = {"HOME": "/home/me", "DEST": "/from/env"}
    assert values(tmp_path, """
        A=$HOME/a
        B=$DEST
        DEST=/from/localrc
        C=$DEST
    """, environ) == {"A": "/home/me/a", "B": "/from/env", "DEST": "/from/localrc", "C": "/from/localrc"}


def test_predefined_values_come_after_localrc_and_before_the_environment(tmp_path):
    path = write(tmp_path, """
        A=$DEST/a
        B=$DATA_DIR
        DEST=/srv
        C=$DATA_DIR
        D=$OTHER
    """)
    result = parse_localrc(path, {"DEST": "/env", "OTHER": "env"},
                           predefined={"DEST": "/opt/stack", "DATA_DIR": "$DEST/data"})
    assert {k: s.value for k, s in result.values.items()} == {
        "A": "/opt/stack/a", "B": "/opt/stack/data", "DEST": "/srv", "C": "/srv/data", "D": "env"}
    assert result.warnings == []


def test_assignments_on_one_line_expand_in_order(tmp_path):
    assert values(tmp_path, "A=1 B=$A\n") == {"A": "1", "B": "1"}


def test_unknown_variable_expands_to_nothing_with_a_warning(tmp_path):
    result = parse(tmp_path, """
        # line 1
        PASSWORD=pa$word
    """)
    assert result.values["PASSWORD"].value == "pa"
    assert [str(w) for w in result.warnings] == [
        f"{tmp_path / 'localrc'}:2: $word is not set, so it expands to nothing "
        "(write '...' in single quotes for a literal $)"]


def test_lone_dollar_is_literal(tmp_path):
    assert values(tmp_path, """
        A=cost$
        B="a $ b"
    """) == {"A": "cost$", "B": "a $ b"}


def test_quoted_value_may_span_lines(tmp_path):
    result = parse(tmp_path, """
        A="one
        two"
        B=3
    """)
    assert result.values["A"].value == "one\ntwo"
    assert (result.values["A"].line, result.values["B"].line) == (1, 3)


def test_trailing_backslash_continues_the_line(tmp_path):
    assert values(tmp_path, "A=one\\\ntwo\n") == {"A": "onetwo"}


# ---- services ------------------------------------------------------------------------------
def ops(result):
    return [(op.op, op.services, op.line) for op in result.service_ops]


def test_enable_and_disable_keep_order(tmp_path):
    result = parse(tmp_path, """
        enable_service tempest n-cpu
        disable_service horizon,c-vol
        disable_all_services
        enable_service key
    """)
    assert ops(result) == [("enable", ("tempest", "n-cpu"), 1), ("disable", ("horizon", "c-vol"), 2),
                           ("disable_all", (), 3), ("enable", ("key",), 4)]
    assert all(isinstance(op, ServiceOp) and op.file == str(tmp_path / "localrc") for op in result.service_ops)


def test_enabled_services_forms(tmp_path):
    result = parse(tmp_path, """
        ENABLED_SERVICES=key,mysql
        ENABLED_SERVICES+=,rabbit
        ENABLED_SERVICES="$ENABLED_SERVICES,tempest"
        ENABLED_SERVICES=${ENABLED_SERVICES},horizon,-rabbit
    """)
    assert ops(result) == [("set", ("key", "mysql"), 1), ("enable", ("rabbit",), 2),
                           ("enable", ("tempest",), 3), ("enable", ("horizon",), 4),
                           ("disable", ("rabbit",), 4)]
    assert "ENABLED_SERVICES" not in result.values


def test_enabled_services_ignores_the_environment(tmp_path):
    result = parse(tmp_path, 'ENABLED_SERVICES="$ENABLED_SERVICES,x"\n', {"ENABLED_SERVICES": "evil"})
    assert ops(result) == [("enable", ("x",), 1)]


def test_empty_enabled_services_disables_everything(tmp_path):
    assert ops(parse(tmp_path, "ENABLED_SERVICES=\n")) == [("set", (), 1)]


def test_disable_all_services_takes_no_arguments(tmp_path):
    path, found = problems(tmp_path, "disable_all_services key\n")
    assert found == [f"{path}:1: disable_all_services takes no arguments"]


def test_enable_service_needs_a_name(tmp_path):
    path, found = problems(tmp_path, "# 1\nenable_service\n")
    assert found == [f"{path}:2: enable_service needs at least one service name"]


# ---- local.conf ----------------------------------------------------------------------------
LOCAL_CONF = """
    # DevStack local.conf
    [[local|localrc]]
    ADMIN_PASSWORD=secret
    enable_service tempest

    [[post-config|$NOVA_CONF]]
    [DEFAULT]
    debug = True
    # comment
    ; comment too
    [libvirt]
    cpu_mode=host-passthrough
    cpu_models = a
    cpu_models = b

    [[post-config|/etc/neutron/neutron.conf]]
    [DEFAULT]
    global_physnet_mtu = 1400

    [[local|localrc]]
    HOST_IP=10.1.2.3

    [[test-config|$TEMPEST_CONFIG]]
    [compute]
    min_compute_nodes = 1

    [[post-install|$NOVA_CONF]]
    [DEFAULT]
    x = y
"""


def test_local_conf_sections(tmp_path):
    result = parse(tmp_path, LOCAL_CONF, name="local.conf")
    file = str(tmp_path / "local.conf")
    assert {k: s.value for k, s in result.values.items()} == {"ADMIN_PASSWORD": "secret", "HOST_IP": "10.1.2.3"}
    assert ops(result) == [("enable", ("tempest",), 4)]
    assert result.post_config == [
        PostConfig("post-config", "$NOVA_CONF", "DEFAULT", "debug", "True", file, 8, 6),
        PostConfig("post-config", "$NOVA_CONF", "libvirt", "cpu_mode", "host-passthrough", file, 12, 6),
        PostConfig("post-config", "$NOVA_CONF", "libvirt", "cpu_models", "a", file, 13, 6),
        PostConfig("post-config", "$NOVA_CONF", "libvirt", "cpu_models", "b", file, 14, 6),
        PostConfig("post-config", "/etc/neutron/neutron.conf", "DEFAULT", "global_physnet_mtu", "1400",
                   file, 18, 16),
        PostConfig("test-config", "$TEMPEST_CONFIG", "compute", "min_compute_nodes", "1", file, 25, 23),
        PostConfig("post-install", "$NOVA_CONF", "DEFAULT", "x", "y", file, 29, 27),
    ]


def test_local_conf_problems(tmp_path):
    path, found = problems(tmp_path, """
        HOST_IP=1.2.3.4
        [[local|localrc]]
        A=1
        [[post-confg|$NOVA_CONF]]
        [DEFAULT]
        [[local|other]]
        [[post-config|]]
        [[post-config|$NOVA_CONF]]
        orphan = 1
        [DEFAULT]
        no equals sign
        []
        [[broken
    """, name="local.conf")
    assert found == [
        f"{path}:1: text before the first [[phase|file]] section (DevStack ignores it; minstack refuses to guess)",
        f"{path}:4: unknown local.conf phase 'post-confg'; did you mean 'post-config'?",
        f"{path}:6: [[local|other]]: the local phase only takes localrc, as in [[local|localrc]]",
        f"{path}:7: [[post-config|]] names no config file",
        f"{path}:9: 'orphan' is not inside a [section]",
        f"{path}:11: expected 'key = value' or '[section]'",
        f"{path}:12: malformed INI section header; expected [name]",
        f"{path}:13: malformed meta-section header; expected [[phase|file]]",
    ]


def test_shell_test_is_not_mistaken_for_a_local_conf_header(tmp_path):
    path, found = problems(tmp_path, "[[ -f /etc/x ]] || A=1\n")
    assert len(found) == 1 and found[0].startswith(f"{path}:1: ") and SHELL_HINT in found[0]


def test_localrc_section_errors_keep_file_lines(tmp_path):
    path, found = problems(tmp_path, """
        [[post-config|$NOVA_CONF]]
        [DEFAULT]
        a = 1
        [[local|localrc]]
        A=1
        B="open
        C=2
    """, name="local.conf")
    assert found == [f"{path}:6: unterminated \" (opened on this line, never closed)"]


# ---- refused: shell ------------------------------------------------------------------------
@pytest.mark.parametrize("statement", [
    "HOST_IP=$(hostname -I)",
    "HOST_IP=`hostname -I`",
    'HOST_IP="$(hostname -I)"',
    'A="`date`"',
    "if [ -f /etc/debian_version ]; then",
    "source /etc/os-release",
    "cat /etc/hosts | grep x",
    "A=1; B=2",
    "A=1 && B=2",
    "A=1 >/tmp/x",
    "[[ -f x ]] && A=1",
    "for i in 1 2; do",
    "my_function() {",
    "fi",
    "A=(one two)",
    "A=${B/x/y}",
    "A=${#B}",
    "A=x$1",
    "A=$$",
    "A=$'ansi'",
    "A=${B:-'quoted'}",
])
def test_shell_is_refused(tmp_path, statement):
    path, found = problems(tmp_path, f"# line 1\n{statement}\nOK=1\n")
    assert len(found) == 1
    assert found[0].startswith(f"{path}:2: ")
    assert SHELL_HINT in found[0]


def test_unquoted_space_gets_a_quoting_hint(tmp_path):
    path, found = problems(tmp_path, "# 1\n\nENABLED_SERVICES=key, mysql\n")
    assert found == [f"{path}:3: unquoted space in the value of ENABLED_SERVICES (or a command after it); "
                     'quote the whole value, e.g. ENABLED_SERVICES="a b"']


def test_enable_plugin_lines_are_read_with_their_line(tmp_path):
    path = write(tmp_path, "X=1\nenable_plugin heat https://opendev.org/openstack/heat\n"
                           "enable_plugin b $HOME/b stable/2026.2\n", "localrc")
    found = parse_localrc(path, {"HOME": "/home/u"})
    assert [(p.name, p.source, p.ref, p.line) for p in found.plugins] == [
        ("heat", "https://opendev.org/openstack/heat", "", 2), ("b", "/home/u/b", "stable/2026.2", 3)]


@pytest.mark.parametrize("line", ["enable_plugin heat", "enable_plugin", "enable_plugin a b c d",
                                  "enable_plugin ../x /path"])
def test_bad_enable_plugin_lines(tmp_path, line):
    path, found = problems(tmp_path, line + "\n")
    assert found == [f"{path}:1: expected enable_plugin NAME URL|PATH [REF]"]


def test_refused_values_are_not_echoed(tmp_path):
    path, found = problems(tmp_path, "ADMIN_PASSWORD=sec|ret\nDATABASE_PASSWORD=top secret\n")
    assert len(found) == 2
    assert found[0].startswith(f"{path}:1: the value of ADMIN_PASSWORD {SHELL_HINT}")
    assert found[1].startswith(f"{path}:2: unquoted space in the value of DATABASE_PASSWORD")
    assert not any("sec|ret" in line or "top secret" in line for line in found)


# ---- refused: unterminated -----------------------------------------------------------------
@pytest.mark.parametrize("opening, opener", [
    ('A="never closed', '"'),
    ("A='never closed", "'"),
    ('A="${B:-x', "${"),
    ("A=${B", "${"),
])
def test_unterminated_is_reported_where_it_opened(tmp_path, opening, opener):
    path, found = problems(tmp_path, f"X=1\n\n{opening}\nB=2\nC=3\n")
    assert found == [f"{path}:3: unterminated {opener} (opened on this line, never closed)"]


def test_unterminated_quote_opened_on_a_continued_line(tmp_path):
    path, found = problems(tmp_path, 'A="one\ntwo" B=\'three\nC=4\n')
    assert found == [f"{path}:2: unterminated ' (opened on this line, never closed)"]


def test_trailing_backslash_at_end_of_file(tmp_path):
    path, found = problems(tmp_path, "A=1\nB=two\\\n")
    assert found == [f"{path}:2: the line ends with \\ (continued on the next line) but nothing follows"]


# ---- every problem at once -----------------------------------------------------------------
def test_all_problems_are_collected(tmp_path):
    path, found = problems(tmp_path, """
        A=$(one)
        B=fine
        if true; then
        C=`three`
        D='four
    """)
    assert [line.split(": ")[0] for line in found] == [f"{path}:{n}" for n in (1, 3, 4, 5)]


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        parse_localrc(tmp_path / "nope", {})
    assert str(caught.value) == f"{tmp_path / 'nope'}: no such file (cp localrc.example localrc to start)"
