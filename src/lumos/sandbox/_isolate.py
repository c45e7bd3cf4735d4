"""In-sandbox isolation steps (standard library only; imported by ``_launcher.py`` as root).

Each step is best effort and reports what it achieved, so a verdict never claims what did not happen:

- :func:`namespaces`: new network, PID, mount, IPC and UTS namespaces;
- :func:`minimal_root`: a fresh root (tmpfs, read-only) holding only read-only binds of ``/usr``, ``/lib*``,
  ``/bin``, the interpreter's prefix, the venv and a few ``/dev`` nodes, plus the working directory as a
  size- and inode-capped tmpfs. No ``/run``, ``/tmp``, ``/home``, ``/sys``, ``/etc`` or host socket is
  visible; directories leading to the interpreter are recreated world-traversable, so a checkout under a
  ``chmod 700`` home works;
- :func:`template_root` / :func:`enter_template` / :func:`template_workdir`: the same root, its read-only part
  built once per fork server in a mount namespace that each job copies and completes with its working directory;
- :func:`ipc_limits`: caps on SysV shared memory and message queues in the new IPC namespace;
- :func:`drop_privileges`: rlimits, a fresh uid, a fresh anonymous session keyring, ``no_new_privs`` and the
  seccomp filter the host compiled (raw BPF; see :mod:`lumos.sandbox.seccomp`).
"""

import ctypes
import os
import platform
import resource

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 1, 38, 22, 2
KEYCTL_JOIN_SESSION_KEYRING = 1
_SYSCALLS = {"x86_64": {"pivot_root": 155, "keyctl": 250}, "aarch64": {"pivot_root": 41, "keyctl": 219}}
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
_DEVICES = ("null", "zero", "full", "random", "urandom")

libc = ctypes.CDLL(None, use_errno=True)


def _syscall(name, *args):
    nr = _SYSCALLS.get(platform.machine(), {}).get(name)
    if nr is None:
        raise OSError(38, f"{name}: unknown syscall number on {platform.machine()}")
    ret = libc.syscall(ctypes.c_long(nr), *args)
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")
    return ret


def mount(source, target, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    if libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def prctl(option, arg2, arg3=0):
    if libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


def namespaces(enabled, mount=True):
    """Unshare what the kernel allows; returns ``{"net", "pid", "mount", "ipc"}`` flags. ``mount=False``
    leaves the mount namespace for :func:`enter_template`."""
    want = {"net": CLONE_NEWNET, "pid": CLONE_NEWPID, "mount": CLONE_NEWNS, "ipc": CLONE_NEWIPC}
    if not enabled:
        return {k: False for k in want}
    if not mount:
        del want["mount"]
    if libc.unshare(ctypes.c_int(sum(want.values()) | CLONE_NEWUTS)) == 0:
        return dict({k: True for k in want}, mount=mount)
    out = {k: libc.unshare(ctypes.c_int(flag)) == 0 for k, flag in want.items()}
    out.setdefault("mount", False)
    return out


def unshare_mount():
    """A new mount namespace (a copy of the current one); False when the kernel refuses."""
    return libc.unshare(ctypes.c_int(CLONE_NEWNS)) == 0


def enter_template(template):
    """A private copy of the mount namespace ``template`` (an fd; see :func:`template_root`): ``setns`` into
    it, then ``unshare``. Returns ``(mount_unshared, from_template)``; when ``setns`` fails the copy is the
    host's, as with :func:`namespaces`."""
    joined = libc.setns(ctypes.c_int(template), ctypes.c_int(CLONE_NEWNS)) == 0
    unshared = libc.unshare(ctypes.c_int(CLONE_NEWNS)) == 0
    if joined and not unshared:  # inside the shared template itself: never go on from here
        raise OSError(ctypes.get_errno(), "unshare of a copy of the template mount namespace failed")
    return unshared, joined


def _bind(src, newroot, ro=True):
    """Bind ``src`` at the same path inside ``newroot`` (parents created 0755), read-only."""
    target = newroot + src
    if os.path.islink(src):
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if not os.path.lexists(target):
            os.symlink(os.readlink(src), target)
        return
    if os.path.isdir(src):
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if not os.path.exists(target):
            open(target, "w").close()
    mount(src, target, None, MS_BIND | MS_REC)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | (MS_RDONLY if ro else 0)
    keep = os.statvfs(target).f_flag & (MS_NODEV | MS_NOEXEC)
    mount(None, target, None, flags | keep)


def covered(path, done):
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in done)


def interpreter_dirs(prefixes):
    """Directories the interpreter needs that the system directories do not already hold."""
    out = []
    for p in sorted({os.path.realpath(p) for p in prefixes if p}):
        if not covered(p, _SYSTEM_DIRS) and not covered(p, out) and os.path.isdir(p):
            out.append(p)
    return out


def _skeleton(newroot, prefixes):
    """The read-only part of the minimal root, in ``newroot`` (a fresh tmpfs): system and interpreter
    directories, ``/dev`` nodes and the ``/proc`` mount point."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", newroot, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m,nr_inodes=4096")
    for d in _SYSTEM_DIRS:
        if os.path.lexists(d):
            _bind(d, newroot)
    for d in interpreter_dirs(prefixes):
        _bind(d, newroot)
    os.makedirs(newroot + "/dev", mode=0o755)
    for name in _DEVICES:
        _bind("/dev/" + name, newroot, ro=False)
    os.makedirs(newroot + "/proc", mode=0o555)


def _pivot(newroot):
    """Make ``newroot`` the root, detach the old one, and make the root tmpfs read-only."""
    old = newroot + "/.old"
    os.mkdir(old, 0o700)
    _syscall("pivot_root", newroot.encode(), old.encode())
    os.chdir("/")
    if libc.umount2(b"/.old", MNT_DETACH) != 0:
        raise OSError(ctypes.get_errno(), "umount of the old root failed")
    os.rmdir("/.old")
    mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _workdir(target, entries, uid, lim, protected):
    """Mount the working directory's tmpfs (``disk_mb`` MiB, ``max_files`` inodes) at ``target`` and fill it
    with ``entries`` (see :func:`read_tree`)."""
    opts = f"mode=700,size={int(lim['disk_mb'])}m,nr_inodes={int(lim['max_files'])}"
    mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, opts)
    _fill_tree(entries, target, uid, protected)


def minimal_root(newroot, workdir, uid, lim, prefixes, protected):
    """Build the sandbox's root in ``newroot`` (an existing, root-only directory) and pivot into it.

    The working directory becomes a tmpfs of ``disk_mb`` MiB and ``max_files`` inodes holding a copy of the
    host's working directory; ``protected`` paths (and every directory) are root-owned and read-only for the
    sandbox user, the rest belong to ``uid``.
    """
    entries = read_tree(workdir)
    _skeleton(newroot, prefixes)
    target = newroot + workdir
    os.makedirs(target, mode=0o755, exist_ok=True)
    _workdir(target, entries, uid, lim, protected)
    _pivot(newroot)


def template_root(newroot, prefixes, base):
    """In a fresh mount namespace of a throw-away child: :func:`minimal_root` without the working directory
    (the directory ``base`` is left empty for it). The fork server keeps this namespace; each job then
    starts from a private copy of it (:func:`enter_template`) and needs only
    :func:`template_workdir`: no bind mounts, no pivot and no unmount (whose RCU wait is on the job's path)."""
    if libc.unshare(ctypes.c_int(CLONE_NEWNS)) != 0:
        raise OSError(ctypes.get_errno(), "unshare of the mount namespace failed")
    _skeleton(newroot, prefixes)
    os.makedirs(newroot + base, mode=0o755, exist_ok=True)
    _pivot(newroot)


def template_workdir(workdir, entries, uid, lim, protected):
    """In a job's copy of the template namespace: a small tmpfs (read-only after) on the working
    directory's parent, holding only the working directory, a tmpfs filled with ``entries``."""
    base = os.path.dirname(workdir)
    mount("tmpfs", base, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64k,nr_inodes=16")
    os.mkdir(workdir, 0o755)
    _workdir(workdir, entries, uid, lim, protected)
    mount(None, base, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir("/")


def read_tree(src):
    """The host's working directory as ``[(relative path, None for a directory or the file's bytes)]``,
    parents first (read before the sandbox's mount namespace hides it)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        for d in dirnames:
            out.append((os.path.normpath(os.path.join(rel, d)), None))
        for f in filenames:
            with open(os.path.join(dirpath, f), "rb") as fh:
                out.append((os.path.normpath(os.path.join(rel, f)), fh.read()))
    return out


def _fill_tree(entries, dst, uid, protected):
    """Write ``entries`` into the tmpfs; ownership decides what the sandbox may change."""
    owner = uid if uid is not None else 0
    os.chown(dst, owner, owner)
    for rel, data in entries:
        path = os.path.join(dst, rel)
        if data is None:
            os.mkdir(path, 0o755)
            # directories: root-owned and sticky when they hold protected files, so nothing in them
            # can be renamed or deleted by the sandbox user; new files may still be created
            os.chown(path, *((0, 0) if protected else (owner, owner)))
            if protected:
                os.chmod(path, 0o1777)
            continue
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        if rel in protected:
            os.chmod(path, 0o444)
        else:
            os.chown(path, owner, owner)
            os.chmod(path, 0o644)
    if protected:
        os.chown(dst, 0, 0)
        os.chmod(dst, 0o1777)


def blocked_ancestor(path):
    """The highest ancestor of ``path`` that others may not traverse (None when all are traversable)."""
    parts = os.path.abspath(path).split(os.sep)
    for i in range(2, len(parts) + 1):
        d = os.sep.join(parts[:i]) or os.sep
        if not os.stat(d).st_mode & 0o001:
            return d
    return None


def expose_interpreter(prefixes):
    """Without the minimal root (``namespaces=False``): in a private mount namespace, hide each blocked
    ancestor of the interpreter's directories behind a tmpfs and bind the directories back. Raises
    ``OSError`` naming the directory and the fix when that is impossible."""
    dirs = [d for d in interpreter_dirs(prefixes) if blocked_ancestor(d)]
    if not dirs:
        return False
    if libc.unshare(ctypes.c_int(CLONE_NEWNS)) != 0:
        raise OSError(1, f"the interpreter under {blocked_ancestor(dirs[0])} is not reachable for the sandbox uid; fix: chmod o+x {blocked_ancestor(dirs[0])}, "
                         "or allow mount namespaces")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    fds = [os.open(d, os.O_PATH) for d in dirs]
    try:
        for blocked in sorted({b for d in dirs if (b := blocked_ancestor(d)) is not None}):
            mount("tmpfs", blocked, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64k")
        for d, fd in zip(dirs, fds):
            os.makedirs(d, mode=0o755, exist_ok=True)
            mount(f"/proc/self/fd/{fd}", d, None, MS_BIND | MS_REC)
    finally:
        for fd in fds:
            os.close(fd)
    return True


def ipc_limits(lim):
    """Cap SysV shared memory and message queues in this (new) IPC namespace; True when all were set."""
    pages = max(1, lim["shm_mb"] * 2**20 // os.sysconf("SC_PAGE_SIZE"))
    values = {"shmmax": lim["shm_mb"] * 2**20, "shmall": pages, "shmmni": 16, "msgmni": 8, "msgmnb": 65536}
    ok = True
    for name, value in values.items():
        try:
            with open("/proc/sys/kernel/" + name, "w") as f:
                f.write(str(value))
        except OSError:
            ok = False
    return ok


def rlimits(lim):
    """The rlimits that the limits ``lim`` (``SandboxLimits.to_dict()``) ask for, as ``[(limit's name,
    resource.RLIMIT_*, value)]``: what :func:`set_limits` sets, and what the host checks against its own hard
    limits before a job starts."""
    return [("cpu_time", resource.RLIMIT_CPU, max(1, round(lim["cpu_time"]))),
            ("memory_mb", resource.RLIMIT_AS, lim["memory_mb"] * 2**20),
            ("max_file_mb", resource.RLIMIT_FSIZE, lim["max_file_mb"] * 2**20),
            ("max_open_files", resource.RLIMIT_NOFILE, lim["max_open_files"]),
            ("max_processes", resource.RLIMIT_NPROC, lim["max_processes"])]


def set_limits(lim, nproc):
    """Every rlimit of :func:`rlimits` (``RLIMIT_NPROC`` only when ``nproc``: it counts the processes of the
    fresh uid), no core files and no POSIX message queues."""
    def one(which, value):
        value = int(value)
        resource.setrlimit(which, (value, value))

    # soft == hard: the hard limit's SIGKILL comes at once (a SIGXCPU handler cannot stretch it)
    for name, which, value in rlimits(lim):
        if nproc or name != "max_processes":
            one(which, value)
    one(resource.RLIMIT_CORE, 0)
    one(resource.RLIMIT_MSGQUEUE, 0)


def install_seccomp(program):
    """Load a raw BPF program (``struct sock_filter[]`` bytes) with ``PR_SET_SECCOMP``."""
    n = len(program) // 8

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buf = ctypes.create_string_buffer(program, len(program))
    prog = SockFprog(n, ctypes.cast(buf, ctypes.c_void_p))
    if libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(prog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp: {os.strerror(err)}")


def drop_privileges(uid, lim, seccomp_program):
    """Limits, uid, keyring, ``no_new_privs``, seccomp, death signal: the last steps before untrusted code."""
    import signal

    set_limits(lim, nproc=uid is not None)
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    try:  # a fresh anonymous session keyring: nothing of an earlier run's keyrings is possessed
        _syscall("keyctl", ctypes.c_long(KEYCTL_JOIN_SESSION_KEYRING), ctypes.c_void_p(None))
    except OSError:
        pass
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    if seccomp_program:
        install_seccomp(seccomp_program)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
