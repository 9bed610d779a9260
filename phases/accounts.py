"""DevStack's projects, roles and users, created idempotently through openstacksdk.

Projects admin, demo, alt_demo, service; roles admin, member, reader, service;
users admin, demo and alt_demo, all with ADMIN_PASSWORD, as in DevStack.
Service users are made by each service's own phase (minstack.identity).
"""
from __future__ import annotations

from minstack import identity
from minstack.phase import Phase, Step

PROJECTS = {"admin": "Bootstrap project", "demo": "Demo project", "alt_demo": "Alternate demo project",
            "service": "Service project"}
ROLES = ("admin", "member", "reader", "service")
# user -> {project: roles}; admin also administers the demo projects, as in DevStack
USERS = {
    "demo": {"demo": ["member"]},
    "alt_demo": {"alt_demo": ["member"]},
    "admin": {"demo": ["admin"], "alt_demo": ["admin"]},
}


def accounts_exist(settings) -> bool:
    """Cheap check: every DevStack user logs in to its own project (and admin to demo)."""
    return all(identity.can_log_in(settings, user, settings.admin_password, project)
               for user, projects in USERS.items() for project in projects)


class Accounts(Phase):
    def steps(self, ctx):
        s = ctx.settings

        def create():
            conn = identity.admin_connection(s)
            projects = {name: identity.ensure_project(conn, name, description)
                        for name, description in PROJECTS.items()}
            for role in ROLES:
                identity.ensure_role(conn, role)
            for user, grants in USERS.items():
                for project, roles in grants.items():
                    identity.ensure_user(s, conn, user, s.admin_password, projects[project], roles)
            # system scope for admin (devstack-system-admin in clouds.yaml)
            admin = conn.identity.find_user("admin", domain_id=identity.DOMAIN)
            admin_role = conn.identity.find_role("admin")
            conn.identity.assign_system_role_to_user(user=admin, role=admin_role, system="all")

        return [Step("projects, roles, users", create,
                     "projects admin/demo/alt_demo/service; roles admin/member/reader/service; "
                     "users demo, alt_demo", check=lambda: accounts_exist(s))]


PHASE = Accounts(name="accounts", requires=("keystone",), services=("key",))
