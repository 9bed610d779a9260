"""Keystone objects, created idempotently through openstacksdk, in-process.

DevStack forks the ``openstack`` CLI for every project, user, role, service
and endpoint (~2 s of start-up each); one keystoneauth session does it all here.
"""
from __future__ import annotations

import openstack
from keystoneauth1 import session as ks_session
from keystoneauth1.exceptions import ClientException
from keystoneauth1.identity import v3

from minstack import catalogue

REGION = "RegionOne"
DOMAIN = "default"


def keystone_url(settings) -> str:
    return catalogue.keystone_url(settings)


def password_auth(settings, username: str, password: str, project: str | None) -> v3.Password:
    return v3.Password(auth_url=keystone_url(settings) + "/v3", username=username, password=password,
                       user_domain_id=DOMAIN, project_name=project, project_domain_id=DOMAIN)


def can_log_in(settings, username: str, password: str, project: str) -> bool:
    try:
        ks_session.Session(auth=password_auth(settings, username, password, project)).get_token()
        return True
    except ClientException:
        return False


def admin_connection(settings) -> openstack.connection.Connection:
    auth = password_auth(settings, "admin", settings.admin_password, "admin")
    return openstack.connection.Connection(session=ks_session.Session(auth=auth), region_name=REGION,
                                           identity_interface="public")


def ensure_project(conn, name: str, description: str = ""):
    project = conn.identity.find_project(name, domain_id=DOMAIN)
    return project or conn.identity.create_project(name=name, domain_id=DOMAIN, description=description)


def ensure_role(conn, name: str):
    return conn.identity.find_role(name) or conn.identity.create_role(name=name)


def ensure_user(settings, conn, name: str, password: str, project, roles: list[str]):
    """The user exists, has these roles on project, and logs in there with this password."""
    user = conn.identity.find_user(name, domain_id=DOMAIN)
    if user is None:
        user = conn.identity.create_user(name=name, password=password, domain_id=DOMAIN,
                                         default_project_id=project.id)
    for role_name in roles:
        role = ensure_role(conn, role_name)
        if not conn.identity.validate_user_has_project_role(project, user, role):
            conn.identity.assign_project_role_to_user(project, user, role)
    # Roles first: without one, a right password cannot log in to the project either.
    if not can_log_in(settings, name, password, project.name):
        conn.identity.update_user(user, password=password)
        # A password change writes a revocation event; tokens issued in the same second
        # (ours included) may be refused afterwards: get a fresh one.
        conn.session.invalidate()
    return user


def ensure_service(conn, name: str, service_type: str, description: str):
    for service in conn.identity.services(type=service_type):
        if service.name == name:
            return service
    return conn.identity.create_service(name=name, type=service_type, description=description)


def ensure_endpoints(conn, service, url: str, interfaces=("public", "internal", "admin")) -> None:
    """One endpoint per interface in RegionOne, pointing at url (fixed in place when it moved)."""
    existing = {e.interface: e for e in conn.identity.endpoints(service_id=service.id, region_id=REGION)}
    for interface in interfaces:
        endpoint = existing.get(interface)
        if endpoint is None:
            conn.identity.create_endpoint(service_id=service.id, interface=interface, url=url,
                                          region_id=REGION)
        elif endpoint.url != url:
            conn.identity.update_endpoint(endpoint, url=url)


def ensure_service_account(settings, conn, user: str, service_name: str, service_type: str,
                           description: str, url: str | None) -> None:
    """A service's user (admin + service roles in project service), its catalog entry and endpoints.

    Without the ``service`` role keystonemiddleware rejects service-to-service
    calls with 401 (measured: nova -> neutron).
    """
    project = ensure_project(conn, "service")
    ensure_user(settings, conn, user, settings.service_password, project, ["admin", "service"])
    service = ensure_service(conn, service_name, service_type, description)
    if url:
        ensure_endpoints(conn, service, url)


def service_account_differs(settings, conn, user: str, service_name: str, service_type: str,
                            url: str | None) -> list[str]:
    """What ensure_service_account would change (empty: nothing)."""
    project = conn.identity.find_project("service", domain_id=DOMAIN)
    if project is None:
        return ["project service is missing"]
    found = conn.identity.find_user(user, domain_id=DOMAIN)
    if found is None:
        return [f"user {user} is missing"]
    differs = []
    for role_name in ("admin", "service"):
        role = conn.identity.find_role(role_name)
        if role is None or not conn.identity.validate_user_has_project_role(project, found, role):
            differs.append(f"{user} lacks role {role_name} in project service")
    if not differs and not can_log_in(settings, user, settings.service_password, "service"):
        differs.append(f"{user} cannot log in with SERVICE_PASSWORD")
    service = next((svc for svc in conn.identity.services(type=service_type) if svc.name == service_name), None)
    if service is None:
        return differs + [f"service {service_name} ({service_type}) is missing"]
    if url:
        have = {e.interface: e.url for e in conn.identity.endpoints(service_id=service.id, region_id=REGION)}
        differs += [f"{interface} endpoint is not {url}" for interface in ("public", "internal", "admin")
                    if have.get(interface) != url]
    return differs


def user_connection(settings, username: str, project: str) -> openstack.connection.Connection:
    """A connection as one of DevStack's users (they all have ADMIN_PASSWORD)."""
    auth = password_auth(settings, username, settings.admin_password, project)
    return openstack.connection.Connection(session=ks_session.Session(auth=auth), region_name=REGION,
                                           identity_interface="public")
