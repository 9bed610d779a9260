"""Host prerequisites: the stack user, minstack's directories, a resolvable hostname."""
from __future__ import annotations

import pwd
import socket
from pathlib import Path

from minstack.phase import Phase, Step

HOSTS = Path("/etc/hosts")
HOSTS_MARK = "# added by minstack"


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def hostname_resolves() -> bool:
    try:
        socket.getaddrinfo(socket.gethostname(), None)
        return True
    except socket.gaierror:
        return False


class Prereqs(Phase):
    def steps(self, ctx):
        s = ctx.settings

        def make_user():
            # DevStack's stack user: services run as it, never as root; its home is DEST.
            ctx.sh.run(["useradd", "--system", "--user-group", "--create-home", "--home-dir", s.dest,
                        "--shell", "/bin/bash", "--comment", "minstack services", s.stack_user])

        def dirs():
            return [ctx.directory(s.dest, owner=s.stack_user), ctx.directory(s.data_dir, owner=s.stack_user),
                    ctx.directory(s.logdir, owner=s.stack_user), ctx.directory(s.state_dir, mode=0o700)]

        def fix_hosts():
            # RabbitMQ (Erlang) refuses to start when the hostname does not resolve:
            # DevStack's most common RabbitMQ failure.
            name = socket.gethostname()
            ctx.log.info("hostname %s does not resolve: adding it to /etc/hosts", name)
            with HOSTS.open("a") as f:
                f.write(f"127.0.1.1 {name} {HOSTS_MARK}\n")

        return [
            Step("stack user", make_user, f"create the unprivileged user {s.stack_user}",
                 check=lambda: user_exists(s.stack_user)),
            ctx.files_step("directories", f"{s.dest}, {s.data_dir}, {s.logdir} owned by {s.stack_user}", dirs),
            Step("hostname", fix_hosts, "make the hostname resolve (RabbitMQ needs it)",
                 check=hostname_resolves),
        ]

    def clean(self, ctx):
        if HOSTS.exists() and HOSTS_MARK in HOSTS.read_text():
            kept = [line for line in HOSTS.read_text().splitlines(keepends=True) if HOSTS_MARK not in line]
            HOSTS.write_text("".join(kept))
            ctx.log.info("removed minstack's line from /etc/hosts")


PHASE = Prereqs(name="prereqs")
