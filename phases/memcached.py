"""memcached: Keystone's token cache and Horizon's sessions.

memcached has no authentication at all: it listens on BASE_SERVICES_HOST, loopback by default.
"""
from __future__ import annotations

from minstack.catalogue import ports
from minstack.phase import Phase
from minstack.probes import tcp_open
from minstack.supervisor import Daemon

PORT = ports()["memcached"]


class Memcached(Phase):
    def daemons(self, ctx):
        host = ctx.settings.base_services_host
        return [Daemon("memcached", ["/usr/bin/memcached", "-l", host, "-p", str(PORT), "-U", "0",
                                     "-m", "64", "-c", "1024"],
                       user="memcache", service="memcached", ready=lambda: tcp_open(host, PORT),
                       distro_units=("memcached.service",))]

    def steps(self, ctx):
        [daemon] = self.daemons(ctx)
        return [ctx.start_step(daemon, f"memcached on {ctx.settings.base_services_host}:{PORT}", name="start")]


# DevStack has no service name for memcached: it runs whenever Keystone does.
PHASE = Memcached(name="memcached", requires=("packages",), services=("key", "horizon"), debs=("memcached",),
                  keep_running_on_unstack=True)
