"""Helpers shared by the benchmark scripts: run commands, time them with
hyperfine, and render measured tables into marked blocks of a hand-written
document. The scripts measure to JSON; the prose around the blocks is the
doc's, written by people."""

import json
import os
import shlex
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
              runs: int = 60) -> dict:
    """{name: {mean, stddev, median, min, max, runs}} in seconds, one
    hyperfine call (-N: no shell) so that the commands share the conditions."""
    out = os.path.join(workdir, "hyperfine.json")
    args = ["hyperfine", "-N", "--style", "none", "-w", str(warmup), "-r", str(runs),
            "--export-json", out]
    for name, cmd in commands.items():
        args += ["-n", name, cmd]
    run(args, env=env, capture=True)
    with open(out) as f:
        results = json.load(f)["results"]
    return {r["command"]: {k: r[k] for k in ("mean", "stddev", "median", "min", "max")}
            | {"runs": len(r["times"])} for r in results}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


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
