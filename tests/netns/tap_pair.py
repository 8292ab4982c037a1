#!/usr/bin/env python3
"""Plays qemu for a libvirt <interface type='ethernet'>: holds the host-side
TAP of each pair open and relays its frames to and from a TAP in the VM's
network namespace (the guest's NIC), so that real clients in the VM talk
through the host TAP as through a virtio NIC.

usage: tap_pair.py VM_NETNS_PATH HOST_TAP:GUEST_TAP... (run in the host's
namespace; the host TAPs are created here, the guest TAPs in VM_NETNS_PATH).
Stops on SIGTERM or SIGINT.
"""
import ctypes
import fcntl
import os
import select
import signal
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000


def open_tap(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    os.set_blocking(fd, False)
    return fd


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    pairs = [p.split(":", 1) for p in sys.argv[2:]]
    host = [open_tap(h) for h, _ in pairs]
    libc = ctypes.CDLL(None, use_errno=True)
    with open(sys.argv[1]) as ns:
        if libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
            sys.exit("setns: " + os.strerror(ctypes.get_errno()))
    guest = [open_tap(g) for _, g in pairs]
    peer = {}
    for h, g in zip(host, guest):
        peer[h], peer[g] = g, h
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    print("ready", flush=True)
    while not stop:
        try:
            readable, _, _ = select.select(list(peer), [], [], 0.5)
        except InterruptedError:
            continue
        for fd in readable:
            for _ in range(64):
                try:
                    frame = os.read(fd, 65536)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:  # the peer side is down (EIO): drop
                    break
                try:
                    os.write(peer[fd], frame)
                except OSError:  # the other side is down or full: drop, as a NIC would
                    pass


if __name__ == "__main__":
    main()
