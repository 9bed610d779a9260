"""The demo user's way in: a keypair and a default security group that lets ICMP and SSH in.

The key is generated once under $DATA_DIR/ssh (0600, owned by whoever cloned
minstack, like openrc) and registered in Nova as ``minstack`` for the demo user.
The demo project's ``default`` security group gets ingress ICMP and TCP 22,
as DevStack's documentation tells users to add.
"""
from __future__ import annotations

import os
import pwd

from minstack import identity
from minstack.catalogue import DEMO
from minstack.paths import repo_owner
from minstack.phase import Phase, Step
from minstack.ssh import SSH_USER, key_path

KEYPAIR = DEMO.keypair
RULES = [  # (protocol, port) ingress rules on IPv4
    ("icmp", None),
    ("tcp", 22),
]


def missing_rules(conn) -> tuple[object, list[tuple[str, int | None]]]:
    """The demo project's default security group and the RULES it lacks."""
    group = conn.network.find_security_group("default", project_id=conn.current_project_id)
    if group is None:  # neutron creates it on the project's first use; listing is that use
        list(conn.network.security_groups())
        group = conn.network.find_security_group("default", project_id=conn.current_project_id)
    have = {(r.protocol, r.port_range_min) for r in conn.network.security_group_rules(
        security_group_id=group.id, direction="ingress", ether_type="IPv4")}
    return group, [rule for rule in RULES if rule not in have]


class Access(Phase):
    def steps(self, ctx):
        s = ctx.settings
        key = key_path(s)
        public = key.with_suffix(".pub")

        def generate_key():
            owner = repo_owner()
            ctx.ensure_dir(key.parent, owner=owner, mode=0o700)
            ctx.sh.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "minstack demo key", "-f", key])
            account = pwd.getpwnam(owner)
            for path in (key, public):
                os.chown(path, account.pw_uid, account.pw_gid)

        def keypair_differs():
            """(connection, the keypair registered under our name or None) when it is not our key."""
            conn = identity.user_connection(s, DEMO.project, DEMO.project)
            pair = conn.compute.find_keypair(KEYPAIR)
            if pair is not None and pair.public_key.split()[:2] == public.read_text().split()[:2]:
                return None
            return conn, pair

        def register_keypair(seen):
            conn, old = seen
            if old is not None:  # another key under our name (an earlier DATA_DIR): replace it
                conn.compute.delete_keypair(old)
            conn.compute.create_keypair(name=KEYPAIR, public_key=public.read_text().strip())

        def rules_missing():
            conn = identity.user_connection(s, DEMO.project, DEMO.project)
            group, missing = missing_rules(conn)
            return missing and (conn, group, missing)

        def open_rules(seen):
            conn, group, missing = seen
            for protocol, port in missing:
                conn.network.create_security_group_rule(
                    security_group_id=group.id, direction="ingress", ether_type="IPv4", protocol=protocol,
                    port_range_min=port, port_range_max=port, remote_ip_prefix="0.0.0.0/0")

        return [
            Step("ssh key", generate_key, f"generate {key} (0600)", check=public.exists),
            Step("keypair", register_keypair, f"keypair {KEYPAIR} for the demo user", observe=keypair_differs),
            Step("security group", open_rules, "demo's default group: ingress ICMP and SSH (22)",
                 observe=rules_missing),
        ]

    def summary(self, settings):
        return [("ssh", f"ssh -i {key_path(settings)} {SSH_USER}@<floating IP>   (keypair '{KEYPAIR}', "
                        "demo project; ICMP and SSH open in its default security group)")]


PHASE = Access(name="access", requires=("neutron", "nova", "accounts"), services=("n-api",))
