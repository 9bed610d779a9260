"""Read DevStack's ``localrc`` / ``local.conf`` format -- parsed, NEVER run as shell.

DevStack sources localrc with bash, so a localrc can do anything.  minstack
understands the part of the language people actually use for settings and
refuses the rest, naming the file and line:

* ``KEY=value``, ``export KEY=value``, ``KEY+=more``, several ``A=1 B=2``
  on one line;
* ``"double quotes"`` with ``$VAR``, ``${VAR}``, ``${VAR:-default}``,
  ``${VAR-default}``, ``${VAR:=default}``, ``${VAR=default}`` and the escapes
  ``\\"`` ``\\$`` ``\\\\`` ``\\``` (a quoted value may span lines, as in shell);
* ``'single quotes'`` (literal), unquoted values (``$VAR`` expanded,
  ``\\x`` escapes x), comments (``# ...`` and ``X=1  # note``), blank lines;
* ``enable_service a b``, ``disable_service a b``, ``disable_all_services``,
  ``ENABLED_SERVICES=a,b``, ``ENABLED_SERVICES+=,x``,
  ``ENABLED_SERVICES="$ENABLED_SERVICES,x"`` (and ``-name`` entries, which
  disable ``name`` as in DevStack).

``$VAR`` looks up earlier localrc values first, then ``predefined`` (the
defaults of minstack's own settings, as DevStack's stackrc sets them before it
sources localrc: ``$DEST`` is /opt/stack unless set earlier), then the
environment; an unset variable expands to "" (as in shell) with a warning.  ``$ENABLED_SERVICES``
inside an ENABLED_SERVICES assignment means "the default set" (DevStack sets
the defaults before it sources localrc); the environment is not consulted for it.
``~`` is not expanded.

A DevStack ``local.conf`` (a file with ``[[phase|file]]`` headers) is split
into its meta-sections: ``[[local|localrc]]`` sections are localrc text as
above; every other phase (``post-config``, ``test-config``, ``pre-install``,
``post-install``, ``extra``, ``post-extra``) holds INI text (``[section]`` and
``key = value`` lines) that is kept as :class:`PostConfig` entries with its
phase and its target exactly as written (``$NOVA_CONF`` or an absolute path);
minstack.settings resolves targets and decides which phases it applies.
INI values are kept verbatim.  A key repeated in a section gives several
entries, in file order.

All problems in a file are collected and raised together as one ConfigError.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from minstack.errors import ConfigError, Problem, did_you_mean
from minstack.plugins import NAME as PLUGIN_NAME
from minstack.plugins import PluginLine

LOCAL_PHASE = "local"
INI_PHASES = ("pre-install", "post-install", "post-config", "extra", "post-extra", "test-config")

SHELL_HINT = "is shell, not a setting; minstack parses localrc and never runs it"


# ---- results -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """``KEY=value`` after quote removal and expansion."""

    key: str
    value: str
    file: str
    line: int


@dataclass(frozen=True)
class ServiceOp:
    """One change to the enabled services, in file order.

    op is "enable", "disable", "disable_all" (services empty) or "set"
    (replace the whole set, from ``ENABLED_SERVICES=...``).
    """

    op: str
    services: tuple[str, ...]
    file: str
    line: int


@dataclass(frozen=True)
class PostConfig:
    """One ``key = value`` from a ``[[phase|target]]`` section of local.conf.

    ``target`` is as written (``$NOVA_CONF``, ``/etc/nova/nova.conf``) until
    minstack.settings resolves it to a path; ``header_line`` is the line of
    the ``[[phase|target]]`` header.
    """

    phase: str
    target: str
    section: str
    key: str
    value: str
    file: str
    line: int
    header_line: int | None = None


@dataclass
class Localrc:
    path: Path
    values: dict[str, Setting] = field(default_factory=dict)
    service_ops: list[ServiceOp] = field(default_factory=list)
    post_config: list[PostConfig] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    plugins: list[PluginLine] = field(default_factory=list)    # enable_plugin lines (minstack/plugins.py)


# ---- entry point ---------------------------------------------------------------------------
def parse_localrc(path: Path, environ: Mapping[str, str] | None = None,
                  predefined: Mapping[str, str] | None = None) -> Localrc:
    """Parse a localrc or local.conf; raise ConfigError listing every problem.

    predefined maps names to values ``$NAME`` has when localrc did not set
    NAME (yet); a value may refer to others, as in {"DATA_DIR": "$DEST/data"}.
    """
    path = Path(path)
    file = str(path)
    lines = _read_lines(path)
    result = Localrc(path=path)
    problems: list[Problem] = []
    parser = _LocalrcParser(file, os.environ if environ is None else environ, predefined or {},
                            result, problems)

    if _is_local_conf(lines):
        for section in _meta_sections(lines, file, problems):
            if section.phase == LOCAL_PHASE:
                parser.parse(section.body)
            else:
                result.post_config.extend(_parse_ini_section(section, file, problems))
    else:
        parser.parse(list(enumerate(lines, start=1)))

    if problems:
        raise ConfigError(sorted(problems, key=lambda problem: problem.line or 0))
    return result


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(str(path), None, "no such file (cp localrc.example localrc to start)")])
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([Problem(str(path), None, f"cannot read: {error}")])
    # Split on "\n" only (str.splitlines also splits on form feeds and the
    # like) and forgive Windows line endings.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


# ---- local.conf meta-sections --------------------------------------------------------------
_META_HEADER = re.compile(r"\[\[\s*(?P<phase>[^|\]\s]+)\s*\|\s*(?P<target>[^|\]]*?)\s*\]\]")


@dataclass
class _MetaSection:
    phase: str
    target: str
    line: int
    body: list[tuple[int, str]]


def _is_local_conf(lines: list[str]) -> bool:
    return any(_META_HEADER.fullmatch(line.rstrip()) for line in lines)


def _meta_sections(lines: list[str], file: str, problems: list[Problem]) -> list[_MetaSection]:
    """Split local.conf into its [[phase|target]] sections (bad headers are reported)."""
    sections: list[_MetaSection] = []
    current: _MetaSection | None = None  # None until the first header
    for number, line in enumerate(lines, start=1):
        header = _META_HEADER.fullmatch(line.rstrip())
        if header:
            current = _MetaSection(header["phase"], header["target"], number, [])
            if _check_header(current, file, problems):
                sections.append(current)
            # else: current still collects the lines below, which are dropped
        elif line.startswith("[["):
            problems.append(Problem(file, number, "malformed meta-section header; expected [[phase|file]]"))
            current = _MetaSection("", "", number, [])  # drop the lines below it
        elif current is not None:
            current.body.append((number, line))
        elif line.strip() and not line.lstrip().startswith("#"):
            problems.append(Problem(file, number, "text before the first [[phase|file]] section "
                                                  "(DevStack ignores it; minstack refuses to guess)"))
    return sections


def _check_header(section: _MetaSection, file: str, problems: list[Problem]) -> bool:
    if section.phase == LOCAL_PHASE:
        if section.target == "localrc":
            return True
        problems.append(Problem(file, section.line, f"[[local|{section.target}]]: the local phase only "
                                                    "takes localrc, as in [[local|localrc]]"))
        return False
    if section.phase not in INI_PHASES:
        problems.append(Problem(file, section.line, f"unknown local.conf phase '{section.phase}'"
                                + did_you_mean(section.phase, (LOCAL_PHASE, *INI_PHASES))))
        return False
    if not section.target:
        problems.append(Problem(file, section.line, f"[[{section.phase}|]] names no config file"))
        return False
    return True


def _parse_ini_section(section: _MetaSection, file: str, problems: list[Problem]) -> list[PostConfig]:
    """INI lines of one [[phase|target]] section -> PostConfig entries."""
    entries: list[PostConfig] = []
    ini_section: str | None = None
    for number, line in section.body:
        text = line.strip()
        if not text or text[0] in "#;":
            continue
        if text.startswith("["):
            if not text.endswith("]") or not text[1:-1].strip():
                problems.append(Problem(file, number, "malformed INI section header; expected [name]"))
                ini_section = None
            else:
                ini_section = text[1:-1].strip()
            continue
        key, equals, value = text.partition("=")
        if not equals or not key.strip():
            problems.append(Problem(file, number, "expected 'key = value' or '[section]'"))
        elif ini_section is None:
            problems.append(Problem(file, number, f"'{key.strip()}' is not inside a [section]"))
        else:
            entries.append(PostConfig(section.phase, section.target, ini_section, key.strip(),
                                      value.strip(), file, number, section.line))
    return entries


# ---- lexing: one statement into words ------------------------------------------------------
# A word is a list of parts: literal text and variable references, kept apart
# so expansion can happen later, left to right, as assignments take effect.
@dataclass(frozen=True)
class _Lit:
    text: str


@dataclass(frozen=True)
class _Var:
    name: str
    op: str = ""                   # "", ":-", "-", ":=" or "="
    default: tuple = ()            # parts of the default word


@dataclass(frozen=True)
class _Word:
    parts: tuple
    raw: str                       # the word as written
    assign: tuple[str, str] | None = None  # (name, "=" or "+=") for KEY=value words


class _Unterminated(Exception):
    """The text ended inside a quote or ${...}; offset is where it opened."""

    def __init__(self, offset: int, opener: str):
        super().__init__(opener)
        self.offset = offset
        self.opener = opener


class _ShellSyntax(Exception):
    """Something only a shell could do (command substitution, pipes, ...)."""


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>\+?=)")
_OPERATORS = "|&;<>()"
_DOUBLE_QUOTE_ESCAPES = '"$\\`'


class _Lexer:
    """Split one statement into shell-like words, refusing what only a shell can do."""

    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def words(self) -> list[_Word]:
        words: list[_Word] = []
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in " \t":
                self.pos += 1
            if self.pos >= len(self.text) or self.text[self.pos] == "#":
                return words  # end, or a comment up to the end
            assignments_allowed = all(w.assign or w.raw == "export" for w in words)
            words.append(self._word(assignments_allowed))

    def _word(self, assignments_allowed: bool) -> _Word:
        start = self.pos
        assign = None
        if assignments_allowed:
            match = _ASSIGNMENT.match(self.text, self.pos)
            if match:
                assign = (match["name"], match["op"])
                self.pos = match.end()
        parts: list = []
        while self.pos < len(self.text) and self.text[self.pos] not in " \t":
            char = self.text[self.pos]
            if char == "'":
                parts.append(self._single_quoted())
            elif char == '"':
                parts.extend(self._double_quoted())
            elif char == "$":
                parts.append(self._dollar(quoted=False))
            elif char == "\\":
                parts.append(self._unquoted_escape())
            elif char == "`":
                raise _ShellSyntax("`...` command substitution")
            elif char in _OPERATORS:
                raise _ShellSyntax(f"'{char}'")
            else:
                parts.append(_Lit(char))
                self.pos += 1
        return _Word(tuple(parts), self.text[start:self.pos], assign)

    def _single_quoted(self) -> _Lit:
        opened = self.pos
        end = self.text.find("'", opened + 1)
        if end < 0:
            raise _Unterminated(opened, "'")
        self.pos = end + 1
        return _Lit(self.text[opened + 1:end])

    def _double_quoted(self) -> list:
        opened = self.pos
        self.pos += 1
        parts: list = []
        while True:
            if self.pos >= len(self.text):
                raise _Unterminated(opened, '"')
            char = self.text[self.pos]
            if char == '"':
                self.pos += 1
                return parts or [_Lit("")]
            if char == "\\":
                following = self.text[self.pos + 1:self.pos + 2]
                if following and following in _DOUBLE_QUOTE_ESCAPES:
                    parts.append(_Lit(following))
                    self.pos += 2
                elif following == "\n":  # line continuation
                    self.pos += 2
                else:
                    parts.append(_Lit("\\"))
                    self.pos += 1
            elif char == "$":
                parts.append(self._dollar(quoted=True))
            elif char == "`":
                raise _ShellSyntax("`...` command substitution")
            else:
                parts.append(_Lit(char))
                self.pos += 1

    def _unquoted_escape(self) -> _Lit:
        following = self.text[self.pos + 1:self.pos + 2]
        if not following:  # a trailing backslash continues the statement on the next line
            raise _Unterminated(self.pos, "\\")
        self.pos += 2
        if following == "\n":  # line continuation
            return _Lit("")
        return _Lit(following)

    def _dollar(self, quoted: bool):
        opened = self.pos
        self.pos += 1
        following = self.text[self.pos:self.pos + 1]
        if following == "{":
            return self._braced(opened)
        if following == "(":
            raise _ShellSyntax("$(...) command substitution")
        if following in ("'", '"') and not quoted:
            raise _ShellSyntax(f"${following}...{following} quoting")
        name = _NAME.match(self.text, self.pos)
        if name:
            self.pos = name.end()
            return _Var(name[0])
        if following and (following.isdigit() or following in "@*#?$!-"):
            raise _ShellSyntax(f"the special parameter ${following}")
        return _Lit("$")

    def _braced(self, opened: int) -> _Var:
        self.pos += 1  # past "{"
        name = _NAME.match(self.text, self.pos)
        if not name:
            raise _ShellSyntax("this ${...} form")
        self.pos = name.end()
        if "}" not in self.text[self.pos:]:
            raise _Unterminated(opened, "${")
        if self.text.startswith("}", self.pos):
            self.pos += 1
            return _Var(name[0])
        for op in (":-", ":=", "-", "="):
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return _Var(name[0], op, self._default_word(opened))
        raise _ShellSyntax(f"${{{name[0]}{self.text[self.pos]}...}} (only ${{VAR}}, ${{VAR:-default}} "
                           "and ${VAR:=default} are understood)")

    def _default_word(self, opened: int) -> tuple:
        parts: list = []
        while True:
            if self.pos >= len(self.text):
                raise _Unterminated(opened, "${")
            char = self.text[self.pos]
            if char == "}":
                self.pos += 1
                return tuple(parts)
            if char == "\\" and self.pos + 1 < len(self.text):
                parts.append(_Lit(self.text[self.pos + 1]))
                self.pos += 2
            elif char == "$":
                parts.append(self._dollar(quoted=True))
            elif char in "'\"`":
                raise _ShellSyntax("quotes inside a ${VAR:-default}")
            else:
                parts.append(_Lit(char))
                self.pos += 1


# ---- statements ----------------------------------------------------------------------------
_SERVICE_COMMANDS = ("enable_service", "disable_service", "disable_all_services")
_ENABLED_SERVICES = "ENABLED_SERVICES"
_DEFAULT_SERVICES_MARK = "\0default services\0"  # what $ENABLED_SERVICES expands to
_PREDEFINED_REFERENCE = re.compile(r"\$(\w+)")


class _LocalrcParser:
    """Turns localrc lines into Settings and ServiceOps on a Localrc."""

    def __init__(self, file: str, environ: Mapping[str, str], predefined: Mapping[str, str],
                 result: Localrc, problems: list[Problem]):
        self.file = file
        self.environ = environ
        self.predefined = predefined
        self.result = result
        self.problems = problems

    # -- splitting into statements --
    def parse(self, lines: list[tuple[int, str]]) -> None:
        """Parse numbered lines; a quoted value may continue on the following lines."""
        index = 0
        while index < len(lines):
            first_line, text = lines[index]
            index += 1
            while True:
                try:
                    words = _Lexer(text).words()
                except _Unterminated as open_quote:
                    if index < len(lines):  # the value goes on: join the next line
                        text += "\n" + lines[index][1]
                        index += 1
                        continue
                    self._unterminated(first_line, text, open_quote)
                except _ShellSyntax as construct:
                    self._shell_problem(first_line, text, construct)
                else:
                    if words:
                        self._statement(words, first_line)
                break

    def _unterminated(self, first_line: int, text: str, open_quote: _Unterminated) -> None:
        line = first_line + text.count("\n", 0, open_quote.offset)
        if open_quote.opener == "\\":
            self._problem(line, "the line ends with \\ (continued on the next line) but nothing follows")
        else:
            self._problem(line, f"unterminated {open_quote.opener} (opened on this line, never closed)")

    def _shell_problem(self, line: int, text: str, construct: _ShellSyntax) -> None:
        label = _statement_label(text)
        hint = ""
        if label.startswith("the value of"):
            hint = "; put the value in '...' if it is meant literally"
        self._problem(line, f"{label} {SHELL_HINT} ({construct} is not supported){hint}")

    # -- one statement --
    def _statement(self, words: list[_Word], line: int) -> None:
        if words[0].raw == "export":
            words = words[1:]
            if all(_NAME.fullmatch(w.raw) for w in words):
                return  # "export NAME": nothing to set
        if words and words[0].assign:
            self._assignments(words, line)
        elif words:
            self._command(words, line)

    def _assignments(self, words: list[_Word], line: int) -> None:
        for word in words:
            if not word.assign:
                key = words[0].assign[0]
                self._problem(line, f"unquoted space in the value of {key} (or a command after it); "
                                    f"quote the whole value, e.g. {key}=\"a b\"")
                return
        for word in words:
            name, op = word.assign
            if name == _ENABLED_SERVICES:
                self._services_assignment(word, op, line)
            else:
                value = self._expand(word.parts, line)
                if op == "+=":
                    value = self._lookup(name, "") + value
                self.result.values[name] = Setting(name, value, self.file, line)

    def _command(self, words: list[_Word], line: int) -> None:
        command = words[0].raw
        if command == "enable_plugin":
            self._plugin([self._expand(w.parts, line) for w in words[1:]], line)
            return
        if command not in _SERVICE_COMMANDS:
            self._problem(line, f"{_shorten(' '.join(w.raw for w in words))} {SHELL_HINT}")
            return
        names = _split_services(" ".join(self._expand(w.parts, line) for w in words[1:]))
        if command == "disable_all_services":
            if names:
                self._problem(line, "disable_all_services takes no arguments")
            else:
                self._add_op("disable_all", [], line)
        elif not names:
            self._problem(line, f"{command} needs at least one service name")
        else:
            self._add_op("enable" if command == "enable_service" else "disable", names, line)

    def _plugin(self, args: list[str], line: int) -> None:
        """enable_plugin NAME URL|PATH [REF]: loaded with the settings (minstack/plugins.py)."""
        if len(args) not in (2, 3) or not PLUGIN_NAME.fullmatch(args[0]):
            self._problem(line, "expected enable_plugin NAME URL|PATH [REF]")
            return
        self.result.plugins.append(PluginLine(args[0], args[1], args[2] if len(args) == 3 else "", self.file, line))

    def _services_assignment(self, word: _Word, op: str, line: int) -> None:
        """ENABLED_SERVICES=... replaces the set; +=, or a value that uses
        $ENABLED_SERVICES, adds to it.  "-name" entries disable name."""
        value = self._expand(word.parts, line, services=True)
        incremental = op == "+=" or _DEFAULT_SERVICES_MARK in value
        names = _split_services(value.replace(_DEFAULT_SERVICES_MARK, ","))
        enable = [n for n in names if not n.startswith("-")]
        disable = [n[1:] for n in names if n.startswith("-") and len(n) > 1]
        if enable or not incremental:
            self._add_op("enable" if incremental else "set", enable, line)
        if disable:
            self._add_op("disable", disable, line)

    def _add_op(self, op: str, names: list[str], line: int) -> None:
        self.result.service_ops.append(ServiceOp(op, tuple(names), self.file, line))

    # -- expansion --
    def _expand(self, parts, line: int, services: bool = False) -> str:
        out = []
        for part in parts:
            if isinstance(part, _Lit):
                out.append(part.text)
            else:
                out.append(self._expand_var(part, line, services))
        return "".join(out)

    def _expand_var(self, var: _Var, line: int, services: bool) -> str:
        if services and var.name == _ENABLED_SERVICES:
            value = _DEFAULT_SERVICES_MARK
        else:
            value = self._lookup(var.name, None)
        unset = value is None
        use_default = unset if var.op in ("-", "=") else (unset or value == "")
        if not var.op:
            if unset:
                self.result.warnings.append(Problem(
                    self.file, line, f"${var.name} is not set, so it expands to nothing "
                                     "(write '...' in single quotes for a literal $)"))
            return value or ""
        if not use_default:
            return value
        default = self._expand(var.default, line, services)
        if var.op in (":=", "="):
            self.result.values[var.name] = Setting(var.name, default, self.file, line)
        return default

    def _lookup(self, name: str, missing):
        if name in self.result.values:
            return self.result.values[name].value
        if name in self.predefined:
            return _PREDEFINED_REFERENCE.sub(lambda ref: self._lookup(ref[1], ""), self.predefined[name])
        return self.environ.get(name, missing)

    def _problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.file, line, message))


def _split_services(text: str) -> list[str]:
    """'a,b c' -> ['a', 'b', 'c'] (DevStack uses commas; spaces are forgiven)."""
    return [name for name in re.split(r"[,\s]+", text) if name]


def _statement_label(text: str) -> str:
    """How to name a rejected statement in a message.  For an assignment only
    the key is named: the value may be a password."""
    statement = text.strip()
    if statement.startswith("export "):
        statement = statement[len("export "):].lstrip()
    assignment = _ASSIGNMENT.match(statement)
    if assignment:
        return f"the value of {assignment['name']}"
    return _shorten(text)


def _shorten(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return f"'{text}'" if len(text) <= width else f"'{text[:width - 3]}...'"
