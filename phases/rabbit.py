"""RabbitMQ: bound to BASE_SERVICES_HOST, user stackrabbit, readiness proven with a real AMQP login."""
from __future__ import annotations

import ipaddress
from pathlib import Path

import pika
import psutil

from minstack.catalogue import ports
from minstack.errors import MinstackError
from minstack.phase import Phase, Step
from minstack.supervisor import Daemon

PORT = ports()["rabbit"]

ENV_CONF = "/etc/rabbitmq/rabbitmq-env.conf"
USER = "stackrabbit"
CTL = "/usr/sbin/rabbitmqctl"
# The node's database (rabbit@<host>, its feature flags, plugins, pid file) appears at the first start.
MNESIA = Path("/var/lib/rabbitmq/mnesia")


def amqp_login_works(host: str, password: str) -> bool:
    """Open and close a real AMQP connection: the only proof that clients can use the broker."""
    params = pika.ConnectionParameters(host=host, port=PORT, virtual_host="/",
                                       credentials=pika.PlainCredentials(USER, password),
                                       connection_attempts=1, socket_timeout=5, blocked_connection_timeout=5)
    try:
        pika.BlockingConnection(params).close()
        return True
    except pika.exceptions.AMQPError:
        return False


def node_database() -> list[Path]:
    return sorted(MNESIA.glob("rabbit@*")) if MNESIA.is_dir() else []


def server_runs() -> bool:
    """A RabbitMQ node runs on this host (its Erlang VM, as the rabbitmq user)."""
    return any(p.info["name"] == "beam.smp" and p.info["username"] == "rabbitmq"
               for p in psutil.process_iter(["name", "username"]))


def epmd_addresses(host: str) -> str:
    """epmd listens on loopback (rabbitmqctl needs it there) and, when opened, on the base services' address."""
    return "127.0.0.1" if ipaddress.ip_address(host).is_loopback else f"127.0.0.1,{host}"


class Rabbit(Phase):
    def daemons(self, ctx):
        s = ctx.settings
        home = {"HOME": "/var/lib/rabbitmq"}
        # epmd is started by us (not forked off by RabbitMQ) so it is supervised and stopped with the rest.
        epmd = Daemon("epmd", ["/usr/bin/epmd", "-address", epmd_addresses(s.base_services_host)],
                      user="rabbitmq", env=home, service="rabbit", unit_alias=False,
                      distro_units=("epmd.socket", "epmd.service"))
        server = Daemon("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], user="rabbitmq",
                        env=home, service="rabbit", stop_timeout=60, distro_units=("rabbitmq-server.service",),
                        ready=lambda: ctx.sh.ok([CTL, "-q", "await_startup", "--timeout", "5"]))
        return [epmd, server]

    def database_marker(self, ctx) -> Path:
        """Present when minstack's first start created RabbitMQ's database (so --clean removes it)."""
        return ctx.settings.state_dir / "rabbitmq-database-created"

    def steps(self, ctx):
        s = ctx.settings
        host = s.base_services_host
        epmd, server = self.daemons(ctx)
        marker = self.database_marker(ctx)

        def ensure_user():
            users = ctx.sh.output([CTL, "-q", "list_users"])
            verb = "change_password" if any(line.split()[:1] == [USER] for line in users.splitlines()) \
                else "add_user"
            # the password goes on stdin, never on a command line that ps would show
            ctx.sh.run([CTL, "-q", verb, USER], input=s.rabbit_password + "\n")
            ctx.sh.run([CTL, "-q", "set_permissions", "-p", "/", USER, ".*", ".*", ".*"])

        def prove_login():
            if not amqp_login_works(host, s.rabbit_password):
                raise MinstackError(f"AMQP login as {USER} to {host}:{PORT} failed; "
                                    "see $LOGDIR/rabbitmq.log")

        return [
            ctx.files_step("config", f"{ENV_CONF}: listen on {host}:{PORT}", lambda: [
                ctx.template("rabbit/rabbitmq-env.conf.j2", ENV_CONF, restarts=("rabbitmq",))]),
            Step("database owner", lambda: marker.write_text("minstack started RabbitMQ first\n"),
                 "remember that minstack's start creates RabbitMQ's database (--clean removes it then)",
                 check=lambda: marker.exists() or bool(node_database())),
            ctx.start_step(epmd, f"Erlang's port mapper, on {epmd_addresses(host)}"),
            ctx.start_step(server, "start RabbitMQ and wait for await_startup", name="start"),
            Step("user", ensure_user, f"user {USER} with RABBIT_PASSWORD on vhost /",
                 check=lambda: amqp_login_works(host, s.rabbit_password)),
            Step("amqp login", prove_login, "prove a client can log in over AMQP",
                 check=lambda: amqp_login_works(host, s.rabbit_password)),
        ]

    def clean(self, ctx):
        """stackrabbit and the env file; the database too when minstack's first start made it
        (RabbitMQ is stopped for that: --clean stops it anyway).  A RabbitMQ stopped by
        ./unstack.py --all is started to delete stackrabbit from a database minstack did not make."""
        marker = self.database_marker(ctx)
        # not rabbitmqctl to find out: where no epmd runs, it starts one (epmd -daemon) that stays
        # behind, and the next stack's epmd then cannot listen
        running = server_runs()
        if not running and not marker.exists() and node_database() and Path(ENV_CONF).exists():
            for daemon in self.daemons(ctx):
                ctx.start(daemon)
            running = True
        users = ctx.sh.output([CTL, "-q", "list_users"], check=False) if running else ""
        if any(line.split()[:1] == [USER] for line in users.splitlines()):
            ctx.sh.run([CTL, "-q", "delete_user", USER])
        ctx.remove_files(ENV_CONF)
        if marker.exists():
            for daemon in reversed(self.daemons(ctx)):
                ctx.supervisor.stop(daemon, ctx.log)
            for path in node_database():
                if path.is_dir():
                    ctx.remove_trees(path)
                else:
                    ctx.remove_files(path)


# RabbitMQ before epmd: stopping it runs rabbitmqctl, which starts an epmd of its own (on every
# address, and left behind) when minstack's is already gone.
PHASE = Rabbit(name="rabbit", requires=("packages", "prereqs"), debs=("rabbit",),
               keep_running_on_unstack=True, stop_in_reverse_order=True)
