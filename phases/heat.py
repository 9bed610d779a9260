"""Heat: orchestration (catalogue: h-api, h-api-cfn under uWSGI; h-eng supervised).

Config, database, the two APIs (orchestration on 8004, CloudFormation on 8000),
the engine, and what Heat needs in Keystone beyond its service account, as
DevStack's heat plugin sets it up:

- the ``heat`` domain with its admin ``heat_domain_admin`` (the users Heat makes for
  a stack's servers live there), and the roles ``heat_stack_owner`` and
  ``heat_stack_user``;
- the ``heat-cfn`` (cloudformation) service and endpoints;
- trusts (``deferred_auth_method = trusts``): the engine acts for the user through a
  trust to the ``heat`` user, never with a stored password.

Heat's environment files and AWS templates, shipped in the wheel, go where Heat
looks for them (/etc/heat/environment.d, /etc/heat/templates).
"""
from __future__ import annotations

import datetime

from minstack import catalogue, identity, mysql
from minstack.apiservice import ApiService
from minstack.phase import Step
from minstack.probes import reported_since_start
from minstack.supervisor import Daemon
from minstack.versions import shipped_files

STACK_DOMAIN = "heat"
DOMAIN_ADMIN = "heat_domain_admin"
ROLES = ("heat_stack_owner", "heat_stack_user")
CFN = ("heat-cfn", "cloudformation", "Heat CloudFormation Service")


def engine_reported_since(since: datetime.datetime) -> bool:
    """A heat-engine registered itself in heat.service at or after since (naive UTC): each start
    writes a new row."""
    with mysql.admin_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT MAX(created_at) FROM heat.service WHERE `binary` = 'heat-engine'")
        row = cur.fetchone()
    return bool(row and row[0] and row[0] >= since)


class Heat(ApiService):
    project = "heat"

    def configure(self, ctx):
        s = ctx.settings
        apis = tuple(api.daemon for api in self.apis(s))
        everything = (*apis, "heat-engine")
        shipped = {**{f"environment.d/{n}": p for n, p in self.shipped_dir(s, "environment.d").items()},
                   **{f"templates/{n}": p for n, p in self.shipped_dir(s, "templates").items()}}
        return [ctx.directory(self.etc, owner="root", group=s.stack_user, mode=0o750),
                ctx.directory(self.etc / "environment.d", owner="root", group=s.stack_user, mode=0o750),
                ctx.directory(self.etc / "templates", owner="root", group=s.stack_user, mode=0o750),
                # heat.common.config finds api-paste.ini next to heat.conf
                ctx.copy(self.shipped(s, "api-paste.ini"), self.etc / "api-paste.ini", **self.private(s),
                         restarts=apis),
                *(ctx.copy(source, self.etc / name, **self.private(s), restarts=everything)
                  for name, source in sorted(shipped.items())),
                ctx.template("heat/heat.conf.j2", self.conf(s), **self.private(s), restarts=everything,
                             lock_path=s.data_dir / "heat" / "locks")]

    def shipped_dir(self, settings, name: str) -> dict:
        return shipped_files(settings.venv, self.entry.distribution, f"etc/heat/{name}")

    def before_config(self, ctx):
        s = ctx.settings
        data = s.data_dir / "heat"
        return [ctx.files_step("state dirs", f"{data}/locks owned by {s.stack_user}", lambda: [
            ctx.directory(path, owner=s.stack_user, mode=0o750) for path in (data, data / "locks")])]

    def db_steps(self, ctx):
        return [self.sync(ctx, "db sync", "db_sync", describe="heat-manage db_sync")]

    def extra_daemons(self, ctx):
        s = ctx.settings
        if not s.is_enabled("h-eng"):
            return []
        return [Daemon("heat-engine", [str(s.venv / "bin" / "heat-engine"), "--config-file", str(self.conf(s))],
                       user=s.stack_user, service="h-eng", ready=reported_since_start(engine_reported_since), ready_timeout=s.service_timeout)]

    def account_steps(self, ctx):
        s = ctx.settings
        steps = super().account_steps(ctx)
        if not self.apis(s):
            return steps
        cfn_url = catalogue.url(s, "heat-api-cfn")
        steps.append(Step("stack domain", lambda differs: self.ensure_domain(s),
                          f"domain {STACK_DOMAIN} with its admin {DOMAIN_ADMIN}; roles {', '.join(ROLES)}",
                          observe=lambda: self.domain_differs(s)))
        if s.is_enabled("h-api-cfn"):
            steps.append(Step("cloudformation endpoints", lambda differs: identity.ensure_service_account(
                s, identity.admin_connection(s), "heat", *CFN, cfn_url),
                f"service {CFN[0]} ({CFN[1]}), endpoints {cfn_url}",
                observe=lambda: identity.service_account_differs(s, identity.admin_connection(s), "heat",
                                                                 CFN[0], CFN[1], cfn_url)))
        return steps

    def domain_differs(self, settings) -> list[str]:
        conn = identity.admin_connection(settings)
        differs = [f"role {name} is missing" for name in ROLES if conn.identity.find_role(name) is None]
        domain = conn.identity.find_domain(STACK_DOMAIN)
        if domain is None:
            return differs + [f"domain {STACK_DOMAIN} is missing"]
        user = conn.identity.find_user(DOMAIN_ADMIN, domain_id=domain.id)
        admin = conn.identity.find_role("admin")
        if user is None:
            return differs + [f"user {DOMAIN_ADMIN} is missing"]
        if not conn.identity.validate_user_has_domain_role(domain, user, admin):
            differs.append(f"{DOMAIN_ADMIN} is not admin of domain {STACK_DOMAIN}")
        if not can_log_in_domain(settings, domain):
            differs.append(f"{DOMAIN_ADMIN} cannot log in with SERVICE_PASSWORD")
        return differs

    def ensure_domain(self, settings) -> None:
        conn = identity.admin_connection(settings)
        for name in ROLES:
            identity.ensure_role(conn, name)
        domain = conn.identity.find_domain(STACK_DOMAIN) or conn.identity.create_domain(
            name=STACK_DOMAIN, description="Owns the users and projects Heat creates for stacks")
        user = conn.identity.find_user(DOMAIN_ADMIN, domain_id=domain.id)
        if user is None:
            user = conn.identity.create_user(name=DOMAIN_ADMIN, password=settings.service_password,
                                             domain_id=domain.id, description="Manages users in domain heat")
        elif not can_log_in_domain(settings, domain):
            conn.identity.update_user(user, password=settings.service_password)
        admin = identity.ensure_role(conn, "admin")
        if not conn.identity.validate_user_has_domain_role(domain, user, admin):
            conn.identity.assign_domain_role_to_user(domain, user, admin)

    def clean(self, ctx):
        super().clean(ctx)
        ctx.remove_trees(ctx.settings.data_dir / "heat")


def can_log_in_domain(settings, domain) -> bool:
    """heat_domain_admin gets a domain-scoped token with SERVICE_PASSWORD."""
    from keystoneauth1 import exceptions, session
    from keystoneauth1.identity import v3
    auth = v3.Password(auth_url=identity.keystone_url(settings), username=DOMAIN_ADMIN,
                       password=settings.service_password, user_domain_id=domain.id, domain_id=domain.id)
    try:
        return bool(session.Session(auth=auth).get_token())
    except exceptions.ClientException:
        return False


# After accounts: the service project exists, so parallel phases never race to create it.
PHASE = Heat(name="heat", requires=("mysql", "memcached", "rabbit", "venv", "accounts"))
