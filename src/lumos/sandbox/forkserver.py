"""Host side of the sandbox fork server: one warm launcher process that forks a job per request.

Starting ``python -I -S`` and importing ``ctypes``/``json`` costs tens of milliseconds, more than the
isolation itself. The fork server (``_launcher.py --serve FD``) pays that once; each request carries the
path of a job's config file (root-only) and its four pipe ends (stdout, stderr, results, status) over a
``SOCK_SEQPACKET`` Unix socket (``SCM_RIGHTS``), with the read end of the job's lifeline pipe. The forked job then does exactly what a freshly spawned
launcher does (new session, namespaces, PID-1 child, limits, uid drop), so the spawned launcher is the
slow twin the tests compare it with. The server exits when this process closes its socket (at exit, or
when it dies); a dead server is restarted on the next request, and a process that forked from the one
that started it starts its own.

Joining a cgroup waits for an RCU grace period (10-30 ms on cgroup v1), longer than the rest of a job's
set-up. So the server keeps *standbys*: forks that joined a fresh, empty leaf before any job was known
(:meth:`ForkServer.add_standby`). A job takes a standby's leaf (:meth:`ForkServer.take_standby`, the host
writes the job's caps into it) and names it in its request; the server hands the request to that standby.
Each leaf still serves exactly one job.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading

from lumos.sandbox import cgroup
from lumos.sandbox._shared import LANG, LAUNCHER, PATH

__all__ = ["ForkServer"]

MAX_STANDBYS = 4


class ForkServer:
    """A warm launcher; :meth:`shared` returns this process's instance (started on first use)."""

    _lock = threading.Lock()
    _instance: ForkServer | None = None

    def __init__(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", LAUNCHER, "--serve", str(child.fileno()),
                 os.path.realpath(tempfile.gettempdir())],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/",
                env={"PATH": PATH, "LANG": LANG}, pass_fds=(child.fileno(),),
                start_new_session=True)
        finally:
            child.close()
        self.sock = parent
        self.owner = os.getpid()
        self.send_lock = threading.Lock()
        self.standbys: list[cgroup.Leaf] = []  # leaves joined (or being joined) by a standby, oldest first

    @classmethod
    def shared(cls) -> ForkServer:
        with cls._lock:
            inst = cls._instance
            if inst is None or inst.owner != os.getpid() or inst.proc.poll() is not None:
                if inst is not None and inst.owner == os.getpid():
                    inst.close()
                inst = cls._instance = cls()
            return inst

    def submit(self, config_path: str, fds: list[int], leaf: cgroup.Leaf | None = None) -> None:
        """Start one job; ``fds``: write ends of its stdout, stderr, results and status pipes, then the read
        end of its lifeline (the job kills itself when the host's end closes). ``leaf``: the job's cgroup
        leaf when it came from :meth:`take_standby` (the standby that joined it runs the job)."""
        msg = os.fsencode(config_path) + (b"\0" + _name(leaf).encode() if leaf is not None else b"")
        with self.send_lock:
            socket.send_fds(self.sock, [msg], fds)

    def add_standby(self, leaf: cgroup.Leaf) -> bool:
        """Have a standby join ``leaf`` now, ahead of the job that will take it; False (leaf untouched)
        when :data:`MAX_STANDBYS` are already waiting or the server is gone."""
        msg = b"S" + _name(leaf).encode() + b"\0" + json.dumps(leaf.procs).encode()
        with self.send_lock:
            if len(self.standbys) >= MAX_STANDBYS:
                return False
            try:
                self.sock.send(msg)
            except OSError:
                return False
            self.standbys.append(leaf)
        return True

    def take_standby(self) -> cgroup.Leaf | None:
        """The oldest standby's leaf (already joined, or being joined), or None."""
        with self.send_lock:
            return self.standbys.pop(0) if self.standbys else None

    def close(self) -> None:
        self.sock.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with self.send_lock:
            leaves, self.standbys = self.standbys, []
        for leaf in leaves:  # their standbys die with the server
            cgroup.release(leaf)


def _name(leaf: cgroup.Leaf) -> str:
    return os.path.basename(leaf.dirs[0])


@atexit.register
def _shutdown() -> None:
    inst = ForkServer._instance
    if inst is not None and inst.owner == os.getpid():
        inst.close()
