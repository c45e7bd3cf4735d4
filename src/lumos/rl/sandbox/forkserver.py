"""Host side of the sandbox fork server: one warm launcher process that forks a job per request.

Starting ``python -I -S`` and importing ``ctypes``/``json`` costs tens of milliseconds, more than the
isolation itself. The fork server (``_launcher.py --serve FD``) pays that once; each request carries the
path of a job's config file (root-only) and its four pipe ends (stdout, stderr, results, status) over a
``SOCK_SEQPACKET`` Unix socket (``SCM_RIGHTS``), with the read end of the job's lifeline pipe. The forked job then does exactly what a freshly spawned
launcher does (new session, namespaces, PID-1 child, limits, uid drop), so the spawned launcher is the
slow twin the tests compare it with. The server exits when this process closes its socket (at exit, or
when it dies); a dead server is restarted on the next request, and a process that forked from the one
that started it starts its own.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

__all__ = ["ForkServer"]

_LAUNCHER = Path(__file__).with_name("_launcher.py")


class ForkServer:
    """A warm launcher; :meth:`shared` returns this process's instance (started on first use)."""

    _lock = threading.Lock()
    _instance: ForkServer | None = None

    def __init__(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", str(_LAUNCHER), "--serve", str(child.fileno())],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/",
                env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}, pass_fds=(child.fileno(),),
                start_new_session=True)
        finally:
            child.close()
        self.sock = parent
        self.owner = os.getpid()
        self.send_lock = threading.Lock()

    @classmethod
    def shared(cls) -> ForkServer:
        with cls._lock:
            inst = cls._instance
            if inst is None or inst.owner != os.getpid() or inst.proc.poll() is not None:
                if inst is not None and inst.owner == os.getpid():
                    inst.close()
                inst = cls._instance = cls()
            return inst

    def submit(self, config_path: str, fds: list[int]) -> None:
        """Start one job; ``fds``: write ends of its stdout, stderr, results and status pipes, then the read
        end of its lifeline (the job kills itself when the host's end closes)."""
        with self.send_lock:
            socket.send_fds(self.sock, [os.fsencode(config_path)], fds)

    def close(self) -> None:
        self.sock.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@atexit.register
def _shutdown() -> None:
    inst = ForkServer._instance
    if inst is not None and inst.owner == os.getpid():
        inst.close()
