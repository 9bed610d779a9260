"""RabbitMQ: bound to SERVICE_HOST, user stackrabbit, readiness proven with a real AMQP login."""
from __future__ import annotations

import pika

from minstack.catalogue import ports
from minstack.errors import MinstackError
from minstack.phase import Phase, Step
from minstack.supervisor import Daemon

PORT = ports()["rabbit"]

ENV_CONF = "/etc/rabbitmq/rabbitmq-env.conf"
USER = "stackrabbit"
CTL = "/usr/sbin/rabbitmqctl"


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


class Rabbit(Phase):
    def daemons(self, ctx):
        s = ctx.settings
        home = {"HOME": "/var/lib/rabbitmq"}
        # epmd is started by us (not forked off by RabbitMQ) so it is supervised and stopped with the rest.
        epmd = Daemon("epmd", ["/usr/bin/epmd", "-address", f"127.0.0.1,{s.service_host}"],
                      user="rabbitmq", env=home, service="rabbit")
        server = Daemon("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], user="rabbitmq",
                        env=home, service="rabbit", stop_timeout=60,
                        ready=lambda: ctx.sh.ok([CTL, "-q", "await_startup", "--timeout", "5"]))
        return [epmd, server]

    def steps(self, ctx):
        s = ctx.settings
        epmd, server = self.daemons(ctx)

        def ensure_user():
            users = ctx.sh.output([CTL, "-q", "list_users"])
            verb = "change_password" if any(line.split()[:1] == [USER] for line in users.splitlines()) \
                else "add_user"
            # the password goes on stdin, never on a command line that ps would show
            ctx.sh.run([CTL, "-q", verb, USER], input=s.rabbit_password + "\n")
            ctx.sh.run([CTL, "-q", "set_permissions", "-p", "/", USER, ".*", ".*", ".*"])

        def prove_login():
            if not amqp_login_works(s.service_host, s.rabbit_password):
                raise MinstackError(f"AMQP login as {USER} to {s.service_host}:{PORT} failed; "
                                    "see $LOGDIR/rabbitmq.log")

        return [
            ctx.files_step("config", f"{ENV_CONF}: listen on {s.service_host}:{PORT}", lambda: [
                ctx.template("rabbit/rabbitmq-env.conf.j2", ENV_CONF, restarts=("rabbitmq",))]),
            ctx.start_step(epmd, "Erlang's port mapper, on loopback"),
            ctx.start_step(server, "start RabbitMQ and wait for await_startup", name="start"),
            Step("user", ensure_user, f"user {USER} with RABBIT_PASSWORD on vhost /",
                 check=lambda: amqp_login_works(s.service_host, s.rabbit_password)),
            Step("amqp login", prove_login, "prove a client can log in over AMQP",
                 check=lambda: amqp_login_works(s.service_host, s.rabbit_password)),
        ]


PHASE = Rabbit(name="rabbit", requires=("packages", "prereqs"), debs=("rabbit",),
               keep_running_on_unstack=True)
