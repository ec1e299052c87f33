"""Helpers shared by the benchmark scripts: run commands, time them with
hyperfine, and render measured tables into marked blocks of a hand-written
document. The scripts measure to JSON; the prose around the blocks is the
doc's, written by people."""

import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_path(src: str, base: str) -> str:
    """A PYTHONPATH entry under which ``import runx_env`` loads the code of
    ``src`` (a checkout's src/ directory, this one's or an older revision's),
    without installing it. Older revisions carry src/runx_env with links to
    runner/ and reaper/: src itself is that entry. Since the package tree
    has no links, src/ *is* runx_env: a directory of ``base`` gets one link
    named runx_env to it."""
    if os.path.isdir(os.path.join(src, "runx_env")):
        return src
    entry = os.path.join(base, "import-" + os.urandom(4).hex())
    os.makedirs(entry)
    os.symlink(os.path.abspath(src), os.path.join(entry, "runx_env"))
    return entry


def log(tag: str, msg: str) -> None:
    sys.stderr.write(f"[{tag} {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def run(cmd, env=None, capture=False, check=True, **kw):
    p = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, text=True,
                       stdout=subprocess.PIPE if capture else kw.pop("stdout", None),
                       stderr=subprocess.PIPE if capture else kw.pop("stderr", None), **kw)
    if check and p.returncode:
        raise SystemExit(f"bench: failed ({p.returncode}): {shlex.join(cmd)}\n"
                         f"{(p.stderr or '')[-3000:]}")
    return p


def clean_env(extra: dict) -> dict:
    """The caller's environment without what changes how Python or the
    launchers behave: with PYTHONDONTWRITEBYTECODE=1 (set on some machines)
    an environment that was not compiled at install recompiles every run."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "UV_", "PIPX_", "RUNX_", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


def hyperfine(commands: dict, env: dict, workdir: str, *, warmup: int = 5,
              runs: int = 60, prepare: str | None = None, prefix: list | None = None,
              times: bool = False, check: bool = True) -> dict | None:
    """{name: {mean, stddev, median, min, max, runs[, times]}} in seconds, one
    hyperfine call (-N: no shell) so that the commands share the conditions.
    ``prepare`` runs before each timed run (untimed); with ``prefix``
    hyperfine itself runs as that command's payload (``runx … hyperfine``).
    None when hyperfine failed and ``check`` is false."""
    out = os.path.join(workdir, "hyperfine.json")
    args = ["hyperfine", "-N", "--style", "none", "-w", str(warmup), "-r", str(runs),
            "--export-json", out]
    if prepare:
        args += ["--prepare", prepare]
    for name, cmd in commands.items():
        args += ["-n", name, cmd]
    if run([*(prefix or []), *args], env=env, capture=True, check=check).returncode:
        return None
    with open(out) as f:
        results = json.load(f)["results"]
    return {r["command"]: {k: r[k] for k in ("mean", "stddev", "median", "min", "max", "user",
                                              "system") if k in r}
            | {"runs": len(r["times"])} | ({"times": r["times"]} if times else {})
            for r in results}


def stats(times: list) -> dict:
    return {"mean": statistics.fmean(times), "median": statistics.median(times),
            "stddev": statistics.stdev(times) if len(times) > 1 else 0.0,
            "min": min(times), "runs": len(times)}


def pct(values, q: float) -> float:
    """The q-quantile of ``values``, interpolated (nan when empty)."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def mb(kib: float) -> str:
    return f"{kib / 1024:.1f} MB"


# ------------------------------------------------------------------ /proc

def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_jiffies() -> tuple:
    """(all, idle) jiffies of every CPU since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    return sum(parts[:8]), parts[3] + (parts[4] if len(parts) > 4 else 0)


def proc_status(pid: int) -> dict:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except OSError:
        pass
    return out


def kb(status: dict, key: str) -> int:
    v = status.get(key, "0 kB").split()
    return int(v[0]) if v else 0


def smaps_pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def machine() -> dict:
    """What a result depends on: CPUs, memory, kernel, this checkout's commit
    (``+ uncommitted changes`` when the tracked files differ from it)."""
    cpu, mem = "?", "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 2 ** 20:.0f} GiB"
    except (OSError, StopIteration):
        pass
    git = ["git", "-C", REPO]
    commit = run([*git, "rev-parse", "--short", "HEAD"], capture=True, check=False).stdout.strip()
    dirty = run([*git, "status", "--porcelain", "--untracked-files=no"], capture=True,
                check=False).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu": cpu, "mem": mem, "kernel": platform.release(),
            "commit": (commit or "?") + (" + uncommitted changes" if dirty else ""),
            "when": time.strftime("%Y-%m-%d %H:%M"), "load": loadavg()}


# ------------------------------------------------------------------ set-up

def rmtree(path: str) -> None:
    """rm -rf that also empties read-only directories (runx freezes layers)."""
    def onerror(func, p, exc):
        try:
            os.chmod(os.path.dirname(p), 0o700)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, 0o700)
            func(p)
        except FileNotFoundError:
            pass
        except OSError:
            if func is os.rmdir or func is os.unlink:
                shutil.rmtree(p, ignore_errors=True)
    if os.path.lexists(path):
        shutil.rmtree(path, onerror=onerror)


def find_uv() -> str:
    """uv on PATH, else the one of the uv package beside this interpreter."""
    found = shutil.which("uv")
    if found:
        return found
    try:
        from uv import find_uv_bin
    except ImportError:
        raise SystemExit("bench: uv not found (pip install uv)") from None
    return find_uv_bin()


def tool_install(uv: str, env: dict, *args: str) -> tuple:
    """runx from this checkout as a user gets it: ``uv tool install`` into a
    venv of its own, byte-compiled, under the env's UV_TOOL_DIR and
    UV_TOOL_BIN_DIR; ``args`` go to uv (--python, --with). Returns (the
    runx command, runx's own interpreter), the latter read from the
    command's #! line so that it does not depend on the tool dir's layout."""
    run([uv, "tool", "install", "-q", "--reinstall", "--compile-bytecode", *args, REPO], env)
    runx = os.path.join(env["UV_TOOL_BIN_DIR"], "runx")
    with open(os.path.realpath(runx), "rb") as f:
        return runx, f.readline()[2:].decode().strip()


def table(headers: list, rows: list) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def render(doc: str, blocks: dict) -> None:
    """Replace each ``<!-- bench:NAME begin -->`` … ``<!-- bench:NAME end -->``
    block of ``doc`` with ``blocks[NAME]``; a missing marker is an error (the
    doc's author places the blocks)."""
    with open(doc) as f:
        text = f.read()
    for name, body in blocks.items():
        begin, end = f"<!-- bench:{name} begin -->", f"<!-- bench:{name} end -->"
        i, j = text.find(begin), text.find(end)
        if i < 0 or j < i:
            raise SystemExit(f"bench: {doc} has no block {begin} … {end}")
        text = text[:i + len(begin)] + "\n" + body.strip() + "\n" + text[j:]
    with open(doc, "w") as f:
        f.write(text)
