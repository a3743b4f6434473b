#!/usr/bin/env python3
"""linkem: a simulated network link between the root namespace and a server namespace, in user space.

This machine's kernel has no `sch_netem` (CONFIG_NET_SCH_NETEM is not set), so `tc netem` cannot add delay. linkem does
what netem would on a veth pair: it joins two TUN devices — one in the root namespace (the client side), one moved
into the server namespace — and forwards every IP packet between them after

    serialization: departure = max(arrival, previous departure) + size * 8 / rate
    propagation:   delivery  = departure + one-way delay (half the round trip)

with a tail-drop queue bounded in bytes (packets that would wait longer than `queue_ms` for serialization are
dropped, as a router's buffer would). One process per direction, so the two directions do not share a GIL.
The TUN devices use a large MTU so that 1 Gbit/s is a few thousand packets per second; their fds belong to this
process, so the devices vanish when it exits (and with the namespace).

Usage (as root): linkem.py NETNS CLIENT_IP SERVER_IP PROFILE_FILE — the namespace must exist; PROFILE_FILE holds
"RTT_MS RATE_MBIT QUEUE_MS". Prints "ready" when the link is up. After rewriting PROFILE_FILE, send SIGUSR1 to switch
profiles on the fly. Exits (and the devices vanish) on SIGTERM or when its parent dies.
"""
import collections
import fcntl
import os
import signal
import struct
import subprocess
import sys
import threading
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
MTU = 65000


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


class Profile:
    """The shared link profile; both directions read it for every packet."""

    def __init__(self, rtt_ms, rate_mbit, queue_ms):
        self.set(rtt_ms, rate_mbit, queue_ms)

    def set(self, rtt_ms, rate_mbit, queue_ms):
        self.one_way = rtt_ms / 2000.0
        self.bytes_per_s = rate_mbit * 1e6 / 8
        self.queue_s = queue_ms / 1000.0


def pump(src, dst, profile_path):
    """Forwards packets src → dst with the profile's rate, delay and queue bound. Never returns."""
    profile = Profile(*read_profile(profile_path))
    queue = collections.deque()
    ready = threading.Condition()
    state = {"departure": 0.0, "dropped": 0}

    def reload(*_):
        profile.set(*read_profile(profile_path))

    signal.signal(signal.SIGUSR1, reload)

    def writer():
        while True:
            with ready:
                while not queue:
                    ready.wait()
                deliver_at, packet = queue.popleft()
            delay = deliver_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                os.write(dst, packet)
            except OSError:
                pass

    threading.Thread(target=writer, daemon=True).start()
    while True:
        try:
            packet = os.read(src, MTU + 64)
        except OSError:
            return
        now = time.monotonic()
        start = max(now, state["departure"])
        if start - now > profile.queue_s:
            state["dropped"] += 1
            continue
        departure = start + len(packet) / profile.bytes_per_s
        state["departure"] = departure
        with ready:
            queue.append((departure + profile.one_way, packet))
            ready.notify()


def read_profile(path):
    with open(path) as f:
        rtt, rate, queue = f.read().split()
    return float(rtt), float(rate), float(queue)


def sh(*args):
    subprocess.run(args, check=True)


def main():
    netns, client_ip, server_ip, profile_path = sys.argv[1:5]
    tag = netns[-8:]
    client_dev, server_dev = f"lkc{tag}"[:15], f"lks{tag}"[:15]
    client_fd = open_tun(client_dev)
    server_fd = open_tun(server_dev)
    sh("ip", "link", "set", server_dev, "netns", netns)
    sh("ip", "link", "set", client_dev, "mtu", str(MTU))
    sh("ip", "addr", "add", client_ip, "peer", server_ip, "dev", client_dev)
    sh("ip", "link", "set", client_dev, "up")
    sh("ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up")
    sh("ip", "netns", "exec", netns, "ip", "link", "set", server_dev, "mtu", str(MTU))
    sh("ip", "netns", "exec", netns, "ip", "addr", "add", server_ip, "peer", client_ip, "dev", server_dev)
    sh("ip", "netns", "exec", netns, "ip", "link", "set", server_dev, "up")
    children = []
    for src, dst in ((client_fd, server_fd), (server_fd, client_fd)):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            grandparent = os.getppid()

            def watch():
                while os.getppid() == grandparent:
                    time.sleep(0.5)
                os._exit(0)

            threading.Thread(target=watch, daemon=True).start()
            try:
                pump(src, dst, profile_path)
            finally:
                os._exit(0)
        children.append(pid)

    def forward(signum, _):
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        if signum == signal.SIGTERM:
            sys.exit(0)

    signal.signal(signal.SIGUSR1, forward)
    signal.signal(signal.SIGTERM, forward)
    print("ready", flush=True)
    # Exit (taking the children and so the devices with us) if the parent harness dies.
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)
    forward(signal.SIGTERM, None)


if __name__ == "__main__":
    main()
