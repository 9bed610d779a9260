"""The DevStack service catalogue: names, what minstack supports, the defaults.

Service names are DevStack's, so a DevStack localrc/local.conf keeps working:
every name DevStack users commonly enable is known here.  A known service is
in one of three states:

* supported -- minstack (or an enabled minstack plugin) installs it (supported_services());
* not supported yet -- enabling it is an error at the line that enabled it;
* never supported (not_planned()) -- enabling it is a warning and it is ignored.
"""
from __future__ import annotations

from minstack import catalogue
from minstack.errors import Problem, did_you_mean
from minstack.localrc import ServiceOp

# Everything below is derived from the catalogue (minstack/catalogue.py), minstack plugins' projects
# included (they are declared while the settings load): add a service there.
SERVICE_ALIASES = catalogue.SERVICE_ALIASES
DEFAULT_ENABLED_SERVICES = catalogue.DEFAULT_ENABLED_SERVICES


def known_services() -> dict[str, str]:
    return catalogue.known_services()


def meta_names() -> dict[str, tuple[str, ...]]:
    return catalogue.meta_names()


def supported_services() -> frozenset[str]:
    """What this minstack installs: the services of every project a phase installs."""
    return frozenset(name for project in catalogue.projects() if project.supported for name in project.services)


def not_planned() -> dict[str, str]:
    """Known services minstack will never install, with the reason shown to the user;
    enabling one is a warning and it is ignored."""
    return {name: project.unsupported for project in catalogue.projects()
            if not project.planned for name in project.services}


# Services another enabled service cannot work without (checked for the
# supported services only).
REQUIRES: dict[str, tuple[str, ...]] = {
    "key": ("mysql",),
    "horizon": ("key",),
}


def default_services() -> tuple[str, ...]:
    """DevStack's default set, limited to what this minstack supports."""
    supported = supported_services()
    return tuple(name for name in DEFAULT_ENABLED_SERVICES if name in supported)


def canonical(name: str) -> str:
    """The catalogue name for name (aliases resolved)."""
    return SERVICE_ALIASES.get(name, name)


def expand(name: str) -> tuple[str, ...]:
    """The services a written name stands for: a meta-name (``cinder``) means all of its project's."""
    name = canonical(name)
    return meta_names().get(name, (name,))


def resolve_services(ops: list[ServiceOp], defaults) -> tuple[set[str], list[Problem], list[Problem]]:
    """Apply enable/disable/set ops in order to defaults.

    Meta-names stand for all of their project's services (``disable_service
    cinder``).  Unknown names are left out and reported, with a suggestion, at
    the line of the op that named them: as an error where they would be
    enabled, as a warning where they are disabled (DevStack accepts that too).
    Returns (enabled, errors, warnings).
    """
    enabled = {canonical(name) for name in defaults}
    problems: list[Problem] = []
    warnings: list[Problem] = []
    known = known_services()
    for op in ops:
        names = []
        for written in op.services:
            expanded = expand(written)
            if all(name in known for name in expanded):
                names.extend(expanded)
            elif op.op == "disable":
                warnings.append(Problem(op.file, op.line, f"service '{written}' is not one minstack knows; "
                                                          "nothing to disable"))
            else:
                problems.append(Problem(op.file, op.line, _unknown_message(written)))
        if op.op == "disable_all":
            enabled.clear()
        elif op.op == "set":
            enabled = set(names)
        elif op.op == "enable":
            enabled.update(names)
        elif op.op == "disable":
            enabled.difference_update(names)
        else:
            raise ValueError(f"unknown service op {op.op!r}")
    return enabled, problems, warnings


def check_support(enabled: set[str], ops: list[ServiceOp],
                  file: str) -> tuple[frozenset[str], list[Problem], list[Problem]]:
    """Split the enabled services into what minstack will run, errors and warnings.

    Returns (services to run, errors, warnings).  A problem is reported at the
    op that enabled the service (``file`` without a line if none did).
    """
    run, errors, warnings = set(), [], []
    supported, never = supported_services(), not_planned()
    for name in sorted(enabled):
        where = _enabling_op(name, ops)
        file_, line = (where.file, where.line) if where else (file, None)
        if name in supported:
            run.add(name)
        elif name in never:
            warnings.append(Problem(file_, line, f"service '{name}' is not supported by minstack "
                                                 f"({never[name]}); ignored"))
        else:
            errors.append(Problem(file_, line, f"service '{name}' is not supported by this minstack yet"))
    return frozenset(run), errors, warnings


def check_requirements(enabled: frozenset[str], ops: list[ServiceOp], file: str) -> list[Problem]:
    """A problem for each enabled service whose required service is not enabled,
    at the op that removed the required one (or that enabled the needy one)."""
    problems = []
    for name in sorted(enabled):
        for needed in REQUIRES.get(name, ()):
            if needed in enabled:
                continue
            where = _removing_op(needed, ops) or _enabling_op(name, ops)
            file_, line = (where.file, where.line) if where else (file, None)
            problems.append(Problem(file_, line, f"service '{name}' needs '{needed}', which is not enabled "
                                                 f"(enable_service {needed})"))
    return problems


def _unknown_message(name: str) -> str:
    return f"unknown service '{name}'" + did_you_mean(name, [*known_services(), *SERVICE_ALIASES, *meta_names()])


def _enabling_op(name: str, ops: list[ServiceOp]) -> ServiceOp | None:
    """The last op that enabled name (by enable_service or ENABLED_SERVICES)."""
    for op in reversed(ops):
        if op.op in ("enable", "set") and name in _expanded(op):
            return op
    return None


def _removing_op(name: str, ops: list[ServiceOp]) -> ServiceOp | None:
    """The last op that took name out of the enabled set."""
    for op in reversed(ops):
        if op.op == "disable_all":
            return op
        if op.op == "disable" and name in _expanded(op):
            return op
        if op.op == "set" and name not in _expanded(op):
            return op
    return None


def _expanded(op: ServiceOp) -> set[str]:
    return {name for written in op.services for name in expand(written)}
