"""memcached: Keystone's token cache (and later Horizon's sessions)."""
from __future__ import annotations

from minstack.catalogue import ports
from minstack.phase import Phase
from minstack.probes import tcp_open
from minstack.supervisor import Daemon

PORT = ports()["memcached"]


class Memcached(Phase):
    def daemons(self, ctx):
        host = ctx.settings.service_host
        return [Daemon("memcached", ["/usr/bin/memcached", "-l", host, "-p", str(PORT), "-U", "0",
                                     "-m", "64", "-c", "1024"],
                       user="memcache", service="memcached", ready=lambda: tcp_open(host, PORT))]

    def steps(self, ctx):
        [daemon] = self.daemons(ctx)
        return [ctx.start_step(daemon, f"memcached on {ctx.settings.service_host}:{PORT}", name="start")]


# DevStack has no service name for memcached: it runs whenever Keystone does.
PHASE = Memcached(name="memcached", requires=("packages",), services=("key", "horizon"), debs=("memcached",),
                  keep_running_on_unstack=True)
