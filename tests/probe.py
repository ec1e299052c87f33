"""Report every observable property of this process as JSON, then exit as told.

Standard library only: it runs under any interpreter, in any environment
(runx's tree, `uv run`, `pipx run`, `pip-run`, or none at all).

    python probe.py [--out FILE] [--exit N | --signal NAME] [--ancestors N]

Writes one JSON object to FILE (default: stdout). Everything that can be
read without side effects is read first, before the probe opens any file of
its own, so the fd table is the one the process was started with.

Sections of the report:

  identity   pid, ppid, pgid, sid, children, threads, comm, exe, cmdline
             (these differ between two launches by nature; tests compare them
             with the Popen PID and the caller's PID, not with each other)
  tty        tty_nr and tpgid from /proc/self/stat, ttyname of fds 0-2,
             tcgetpgrp of the controlling terminal
  signals    SigIgn/SigCgt/SigBlk/SigPnd/ShdPnd from /proc/self/status as
             sets of signal names, and signal.getsignal() for every signal.
             Python itself ignores SIGPIPE and SIGXFSZ and catches SIGINT
             at start-up; both launches of the same interpreter do the same,
             so a difference is still the launcher's. For the state exactly
             as exec'd, read /proc/self/status from a non-Python program
             (tests/test_transparency.py does, with cat).
  fds        every open fd: readlink target, file type, device/inode,
             open flags and close-on-exec from /proc/self/fdinfo
  process    rlimits, umask, cwd, uid/gid/groups, capabilities, no_new_privs,
             seccomp, nice, CPU affinity, oom_score_adj, cgroup, namespaces
  env        the whole environment
  python     sys.prefix, sys.base_prefix, sys.executable, sys.flags, version
  ancestors  pid/comm/RSS of the parent chain (to see a launcher that stays)
"""

import json
import os
import resource
import signal
import stat
import sys


def _stat_fields(pid="self"):
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    comm = data[data.index("(") + 1:data.rindex(")")]
    rest = data[data.rindex(")") + 2:].split()
    # rest[0] is field 3 (state) of proc(5)
    return {"comm": comm, "state": rest[0], "ppid": int(rest[1]), "pgrp": int(rest[2]),
            "session": int(rest[3]), "tty_nr": int(rest[4]), "tpgid": int(rest[5]),
            "num_threads": int(rest[17])}


def _status(pid="self"):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def _signame(n):
    try:
        return signal.Signals(n).name
    except ValueError:
        if signal.SIGRTMIN <= n <= signal.SIGRTMAX:
            return f"SIGRTMIN+{n - signal.SIGRTMIN}"
        return f"SIG{n}"


def _sigset(hexmask):
    """/proc status mask (bit N-1 = signal N) → sorted list of names."""
    m = int(hexmask, 16)
    return [_signame(n) for n in range(1, 65) if m & (1 << (n - 1))]


def _fds():
    # listdir opens one fd of its own (the directory); it is closed again
    # before we look at the entries, so drop the ones that no longer exist.
    names = sorted(int(n) for n in os.listdir("/proc/self/fd"))
    out = {}
    for fd in names:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            st = os.fstat(fd)
        except OSError:
            continue
        info = {}
        try:
            with open(f"/proc/self/fdinfo/{fd}") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    info[k.strip()] = v.strip()
        except OSError:
            pass
        flags = int(info.get("flags", "0"), 8)
        out[str(fd)] = {
            "target": target,
            "type": stat.S_IFMT(st.st_mode),
            "dev_ino": [st.st_dev, st.st_ino],
            "flags": oct(flags & ~0o2000000),          # access mode, O_APPEND, O_NONBLOCK…
            "cloexec": bool(flags & 0o2000000),
        }
    return out


def _tty():
    st = _stat_fields()
    names = {}
    for fd in (0, 1, 2):
        try:
            names[str(fd)] = os.ttyname(fd)
        except OSError:
            names[str(fd)] = None
    fg = None
    for fd in (0, 1, 2):
        try:
            fg = os.tcgetpgrp(fd)
            break
        except OSError:
            continue
    return {"tty_nr": st["tty_nr"], "tpgid": st["tpgid"], "ttyname": names, "tcgetpgrp": fg}


def _signals(status):
    getsig = {}
    for n in range(1, signal.NSIG):
        try:
            h = signal.getsignal(n)
        except (ValueError, OSError):
            continue
        if h is signal.SIG_DFL:
            v = "SIG_DFL"
        elif h is signal.SIG_IGN:
            v = "SIG_IGN"
        elif h is None:
            v = None
        else:
            v = getattr(h, "__name__", "handler")
        getsig[_signame(n)] = v
    return {
        "SigIgn": _sigset(status["SigIgn"]),
        "SigCgt": _sigset(status["SigCgt"]),
        "SigBlk": _sigset(status["SigBlk"]),
        "SigPnd": _sigset(status["SigPnd"]),
        "ShdPnd": _sigset(status["ShdPnd"]),
        "pthread_sigmask": sorted(_signame(int(s)) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
        "getsignal": getsig,
    }


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as e:
        return f"<{e.strerror}>"


def _children():
    out = []
    for tid in os.listdir("/proc/self/task"):
        text = _read(f"/proc/self/task/{tid}/children")
        out += [int(p) for p in text.split()] if not text.startswith("<") else []
    return sorted(out)


def _ancestors(depth):
    chain = []
    pid = os.getppid()
    for _ in range(depth):
        if pid <= 1:
            break
        try:
            st = _stat_fields(pid)
            rss = _status(pid).get("VmRSS", "0 kB").split()[0]
            cmd = _read(f"/proc/{pid}/cmdline").split("\0")
        except OSError:
            break
        chain.append({"pid": pid, "comm": st["comm"], "rss_kb": int(rss),
                      "threads": st["num_threads"], "cmdline": cmd[:6]})
        pid = st["ppid"]
    return chain


def _process(status):
    limits = {}
    for name in sorted(dir(resource)):
        if name.startswith("RLIMIT_"):
            try:
                limits[name] = list(resource.getrlimit(getattr(resource, name)))
            except (ValueError, OSError):
                pass
    mask = os.umask(0)
    os.umask(mask)
    ns = {}
    for n in sorted(os.listdir("/proc/self/ns")):
        try:
            ns[n] = os.readlink(f"/proc/self/ns/{n}")
        except OSError:
            pass
    return {
        "rlimits": limits,
        "umask": oct(mask),
        "cwd": os.getcwd(),
        "uid": status.get("Uid"), "gid": status.get("Gid"), "groups": status.get("Groups"),
        "caps": {k: status.get(k) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")},
        "no_new_privs": status.get("NoNewPrivs"),
        "seccomp": status.get("Seccomp"),
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "affinity": sorted(os.sched_getaffinity(0)),
        "oom_score_adj": _read("/proc/self/oom_score_adj"),
        "cgroup": _read("/proc/self/cgroup"),
        "namespaces": ns,
    }


def collect(ancestors=8):
    # fds first: nothing of ours is open yet.
    fds = _fds()
    st = _stat_fields()
    status = _status()
    return {
        "identity": {
            "pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgrp(), "sid": os.getsid(0),
            "children": _children(), "threads": st["num_threads"], "comm": st["comm"],
            "exe": os.readlink("/proc/self/exe"),
            "cmdline": _read("/proc/self/cmdline").split("\0")[:-1] or [],
        },
        "tty": _tty(),
        "signals": _signals(status),
        "fds": fds,
        "process": _process(status),
        "env": dict(os.environ),
        "python": {
            "prefix": sys.prefix, "base_prefix": sys.base_prefix,
            "executable": sys.executable, "version": sys.version,
            "flags": list(sys.flags), "argv": sys.argv,
        },
        "ancestors": _ancestors(ancestors),
    }


def main(argv):
    out = None
    exit_code = 0
    die_by = None
    depth = 8
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--out":
            out, i = argv[i + 1], i + 2
        elif a == "--exit":
            exit_code, i = int(argv[i + 1]), i + 2
        elif a == "--signal":
            die_by, i = argv[i + 1], i + 2
        elif a == "--ancestors":
            depth, i = int(argv[i + 1]), i + 2
        else:
            sys.stderr.write(f"probe: unknown argument {a}\n")
            return 2
    report = json.dumps(collect(depth), indent=1, sort_keys=True)
    if out:
        with open(out, "w") as f:
            f.write(report + "\n")
    else:
        sys.stdout.write(report + "\n")
        sys.stdout.flush()
    if die_by:
        sig = getattr(signal, die_by) if not die_by.isdigit() else int(die_by)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)     # a fatal signal to oneself is delivered before kill returns
        return 99
    return exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
