"""Command line: parse, then run the story of a run in order.

    what to install (requirements, a script's PEP 723 block) → the cached
    layer (layers) → the ephemeral tree (trees) → reaper + exec (launch)

Everything from COMMAND on is the payload's, untouched, even arguments that
look like runx options. A first positional that is a script (see
runner.scripts: an existing ``*.py`` file, or a file whose ``#!`` line
mentions runx) runs as ``python SCRIPT ARG...``; ``-m MODULE`` as
``python -m MODULE ARG...``.

Warm path: a plain ``runx --with X cmd`` imports nothing beyond what it did
before scripts, env files and completion existed; each of those loads its
module only when used.
"""

import os
import sys

from runner import __version__, checkpoint
from runner.errors import EXIT_ENV, RunxError, UsageError

USAGE = """\
usage: runx [OPTIONS] [--] COMMAND [ARG...]
       runx [OPTIONS] SCRIPT [ARG...]
       runx [OPTIONS] -m MODULE [ARG...]
       runx gc [--dry-run] [--kept] | runx ls | runx cache dir|prune|clean"""

HELP = f"""{USAGE}

Run COMMAND in a throwaway Python environment that removes itself when the
command (and anything it left running) is done. runx replaces itself with
COMMAND: same PID, same parent, signals and exit status as if started directly.

  runx --with cowsay cowsay -t hello
  runx --with requests,rich python fetch.py
  runx --with-requirements requirements.txt python app.py
  runx script.py ARG...      (its '# /// script' block, PEP 723, says what to install)
  runx --with httpie -m httpie --version

SCRIPT is an existing file named *.py, or any file whose first line is a #!
line that mentions runx: '#!/usr/bin/env -S runx' makes a script runnable
on its own. It runs as 'python SCRIPT ARG...' on the environment's python,
with the 'dependencies' of its PEP 723 block (plus --with) installed, and
its [tool.uv] settings applied as 'uv run' applies them.

The interpreter, as uv chooses it: --python (or UV_PYTHON); else the
nearest .python-version (next to the script, or up from the current
directory); else the script's 'requires-python'; else the Python runx
runs on.

Options:
  --with REQ            install REQ (repeatable; commas separate several):
                          --with 'httpx>=0.27' --with rich,click
  --with-requirements FILE
                        install from a requirements file, or the dependencies
                        of a PEP 723 script (FILE.py); repeatable
  -p, --python PY       base interpreter, any request uv accepts: 3.12,
                          '>=3.12', cpython@3.13, 3.13t, pypy@3.10, a path
                          or a command (found by 'uv python find')
  -m MODULE             run MODULE as 'python -m MODULE'; what follows are
                        its arguments
  --index-url URL       package index to use instead of PyPI
  --extra-index-url URL additional index (repeatable)
  -f, --find-links PATH look for packages in a directory or page (repeatable):
                          --find-links ./wheels --no-index
  --no-index            use only --find-links
  --offline             never touch the network: use cached layers even if
                        stale, and uv's cache for new ones
  --refresh             re-resolve and rebuild the cached layer now
  --no-cache            install into the run's own tree; nothing persists
  --env-file FILE       add the variables of a dotenv file (NAME=VALUE lines,
                        quotes, '#' comments, 'export ', ${{NAME}}) to the
                        command's environment; repeatable, later files win;
                        runx and uv do not read them
  --keep                do not remove the environment (prints its path;
                        'runx gc --kept' removes it later)
  --tree dir|fuse       where the tree lives: a directory (default) or a FUSE
                        mount served by the reaper (Linux, needs pyfuse3);
                        also RUNX_TREE
  -q, --quiet           say nothing but errors (no uv progress either)
  -v, --verbose         explain each step: interpreter, layer hit or miss,
                        tree, reaper and how it waits (-vv: uv's detail too)
  --completion SHELL    print a completion script for bash, zsh or fish:
                          eval "$(runx --completion bash)"
  --version             print runx's version
  -h, --help            this help

Commands:
  runx gc [--dry-run] [--kept]
                        remove environments left by runs that were killed
                        (--kept: also those kept with --keep)
  runx ls               list live environments
  runx cache dir|prune|clean
                        show, prune or empty the layer cache

The command sees VIRTUAL_ENV and RUNX_ENV set to the environment, and PATH
with the environment's bin first (plus any --env-file variables); nothing
else of its process changes. On a terminal a cold build shows uv's progress;
elsewhere it is silent unless it fails.

Exit status: the command's own once it runs. Before that, runx exits with
  1    the environment could not be built (uv's explanation is shown above),
       no interpreter matches --python, .python-version or the script's
       requires-python (and uv may not download one)
  2    usage: unknown option, missing value, no command, missing script,
       malformed '# /// script' block or [tool.uv] key runx
       cannot honour, unreadable requirements or env file
  126  the command is not executable
  127  the command was not found
Each error is one line: 'runx: error: WHAT (HINT)'.

Environment: RUNX_CACHE_DIR (layers; default ~/.cache/runx), RUNX_RUNTIME_DIR
(live trees; default $XDG_RUNTIME_DIR/runx, else RUNX_CACHE_DIR/runs),
RUNX_FRESHNESS (seconds before unpinned requirements are re-resolved; 86400),
RUNX_TREE, RUNX_DEBUG=1 (a traceback instead of 'internal error').
"""


class Options:
    def __init__(self):
        self.with_: list = []
        self.with_requirements: list = []
        self.python = None
        self.uv_python_args = []    # uv's interpreter options, passed to 'uv python find'
        self.index_url = None
        self.extra_index_urls: list = []
        self.find_links: list = []
        self.no_index = False
        self.offline = False
        self.refresh = False
        self.no_cache = False
        self.keep = False
        self.env_files: list = []
        self.tree = os.environ.get("RUNX_TREE") or "dir"
        self.verbosity = 0
        self.module = None          # -m MODULE
        self.script = None          # SCRIPT, as given (the command is python SCRIPT ...)
        self.command: list = []


_VALUE = {"--with", "--with-requirements", "--python", "-p", "--index-url",
          "--extra-index-url", "--find-links", "-f", "--tree", "--env-file", "--completion",
          "-m"}
_FLAG = {"--no-index", "--offline", "--refresh", "--no-cache", "--keep", "-q", "--quiet",
         "-v", "--verbose", "-vv", "--version", "-h", "--help"}


def parse(argv: list) -> Options:
    from runner.requirements import split_with

    o = Options()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if arg.startswith("-m") and len(arg) > 2 and not arg.startswith("--"):
            name, eq, value = "-m", "=", arg[2:]        # -mMODULE, as python takes it
        elif arg.startswith("--"):
            name, eq, value = arg.partition("=")
        else:
            name, eq, value = arg, "", ""
        if name in _VALUE:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"{name} needs a value")
                value = argv[i]
            if name == "--with":
                reqs = split_with(value)
                for r in reqs:
                    if r.startswith("-"):
                        raise UsageError(f"--with {r}: not a requirement",
                                         "options go before the command, e.g. --index-url URL")
                o.with_ += reqs
            elif name == "--with-requirements":
                o.with_requirements.append(os.path.abspath(value))
            elif name in ("--python", "-p"):
                o.python = value
            elif name == "--index-url":
                o.index_url = value
            elif name == "--extra-index-url":
                o.extra_index_urls.append(value)
            elif name in ("--find-links", "-f"):
                o.find_links.append(value if "://" in value else os.path.abspath(value))
            elif name == "--tree":
                o.tree = value
            elif name == "--env-file":
                o.env_files.append(value)
            elif name == "--completion":
                from runner.completion import script

                sys.stdout.write(script(value))
                raise SystemExit(0)
            elif name == "-m":
                if not value:
                    raise UsageError("-m needs a module name", "e.g. runx --with httpie -m httpie")
                o.module = value
                i += 1
                break                     # like python -m: the rest is the module's
        elif name in _FLAG and not eq:
            if name in ("-h", "--help"):
                sys.stdout.write(HELP)
                raise SystemExit(0)
            if name == "--version":
                print(f"runx {__version__}")
                raise SystemExit(0)
            if name in ("-q", "--quiet"):
                o.verbosity = -1
            elif name in ("-v", "--verbose"):
                o.verbosity = max(o.verbosity, 0) + 1
            elif name == "-vv":
                o.verbosity = max(o.verbosity, 0) + 2
            else:
                setattr(o, name[2:].replace("-", "_"), True)
        elif name in _FLAG:
            raise UsageError(f"{name} takes no value", f"write {name} alone")
        else:
            raise UsageError(f"unknown option {arg}",
                             "see 'runx --help'; put '--' before a command that starts with '-'")
        i += 1
    rest = argv[i:]
    if o.module is not None:
        o.command = ["python", "-m", o.module, *rest]
    elif rest:
        first = rest[0]
        # One stat for a plain command name; the scripts module only for files.
        if first.endswith(".py") or os.path.isfile(first):
            from runner import scripts

            if scripts.is_script(first):
                o.script = first
                o.command = ["python", first, *rest[1:]]
            elif scripts.missing_script(first):
                raise UsageError(f"script {first}: no such file", "check the path")
        if not o.command:
            o.command = rest
    if o.tree not in ("dir", "fuse"):
        raise UsageError(f"--tree {o.tree}: expected 'dir' or 'fuse'")
    if o.keep and o.tree == "fuse":
        raise UsageError("--keep needs --tree dir",
                         "a FUSE tree lives in its reaper's memory and goes with it")
    if not o.command:
        raise UsageError("no command given", "try: runx --with cowsay cowsay -t hi")
    return o


def _say(text: str) -> None:
    if sys.stderr is not None:          # the caller may have closed fd 2
        sys.stderr.write(text)


def main(argv: list | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    from runner.launch import hold_std_fds

    hold_std_fds()
    try:
        if argv and argv[0] in ("gc", "ls", "cache"):
            from runner import commands

            raise SystemExit(commands.main(argv))
        run(parse(argv))
    except RunxError as e:
        hint = f" ({e.hint})" if e.hint else ""
        _say(f"runx: error: {e.message}{hint}\n")
        raise SystemExit(e.code)
    except KeyboardInterrupt:
        # Die of the signal, as the caller expects of an interrupted command.
        import signal

        from runner.launch import flush_stdio

        flush_stdio()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        raise SystemExit(130)
    except Exception as e:
        # A bug, not a user error: still one line, no traceback, unless asked.
        if os.environ.get("RUNX_DEBUG"):
            raise
        _say(f"runx: error: internal error: {type(e).__name__}: {e} "
                         "(a bug in runx; RUNX_DEBUG=1 shows the traceback)\n")
        raise SystemExit(EXIT_ENV)


def _inputs(o: Options, log):
    """Everything the user named, read and checked before anything is made:
    env files, the script's metadata, requirements files. Returns
    (extra requirements, requirement files, payload variables, script metadata)."""
    extra_env: dict = {}
    if o.env_files:
        from runner import dotenv

        for f in o.env_files:
            values = dotenv.parse(dotenv.load(f), {**os.environ, **extra_env}, f)
            log(f"env file {f}: {len(values)} variable{'s' if len(values) != 1 else ''}"
                + (f" ({', '.join(values)})" if values else ""))
            extra_env.update(values)
    reqs: list = []
    files: list = []
    meta = None
    if o.script:
        from runner import scripts

        meta = scripts.read(o.script)
        if meta.found:
            log(f"script {o.script}: dependencies {meta.dependencies or 'none'}"
                + (f", requires-python {meta.requires_python!r}" if meta.requires_python else ""))
        elif meta.unclosed and o.verbosity >= 0:
            _say(f"runx: warning: {o.script}, line {meta.unclosed.line}: "
                 f"{meta.unclosed.describe()}; the block is ignored, so none of its "
                 "dependencies are installed\n")
        else:
            log(f"script {o.script}: no '# /// script' block, no extra packages")
        if meta.tool_uv:
            from runner import paths

            t = scripts.tool_uv(meta, o.script, paths.private_dir(paths.cache_dir()))
            reqs += t.dependencies
            if t.requirements_file:
                files.append(t.requirements_file)
            meta.uv_env = t.env
            log(f"script {o.script}: [tool.uv] {', '.join(meta.tool_uv)}"
                + (f" -> -r {t.requirements_file}" if t.requirements_file else "")
                + (f", {' '.join(f'{k}={v}' for k, v in t.env.items())}" if t.env else ""))
        else:
            reqs += meta.dependencies
    for f in o.with_requirements:
        if f.endswith(".py"):
            from runner import scripts

            m = scripts.read(f, what="requirements file")
            log(f"--with-requirements {f}: dependencies {m.dependencies or 'none'}")
            reqs += m.dependencies
        else:
            from runner.requirements import read_requirements_file

            read_requirements_file(f)        # unreadable file: a usage error, now
            files.append(f)
    return reqs, files, extra_env, meta


def run(o: Options) -> None:
    from runner import interpreter, layers, launch, paths, trees
    from runner.requirements import Spec
    from reaper import watch
    from reaper.daemon import Job

    log = (lambda msg: _say(f"runx: {msg}\n")) if o.verbosity > 0 else (lambda msg: None)
    if o.with_requirements or o.env_files or o.script:
        script_reqs, req_files, extra_env, meta = _inputs(o, log)
    else:
        script_reqs, req_files, extra_env, meta = [], [], None, None
    cache = paths.cache_dir()
    rp = meta.requires_python if meta is not None else None
    choice = interpreter.choose(o.python, script=o.script, requires_python=rp)
    interp = interpreter.find(choice, cache, uv_python_args=o.uv_python_args,
                              script=o.script)
    log(f"interpreter: {interp.executable} ({interp.version}), "
        + (f"for {choice.request!r} from {choice.source}" if choice.request else choice.source))
    if rp:
        from runner import scripts

        if scripts.check_python(meta, interp.version, o.script, o.verbosity):
            log(f"requires-python {rp!r}: {interp.version} satisfies it")
    spec = Spec(o.with_ + script_reqs, req_files, o.index_url, o.extra_index_urls,
                o.find_links, o.no_index)
    # [tool.uv] settings uv takes from its environment: for the build only,
    # not for the payload (the layer key covers them through the -r file).
    uv_env = getattr(meta, "uv_env", None) or {}
    os.environ.update(uv_env)
    layer = None
    if not spec.empty and not o.no_cache:
        paths.private_dir(cache)
        layer = layers.ensure(spec, interp, cache, refresh=o.refresh, offline=o.offline,
                              verbosity=o.verbosity, log=log)
    elif spec.empty:
        log("no requirements: the environment is the bare interpreter")

    if o.tree == "fuse":
        from reaper import fuse_tree     # cheap: pyfuse3 and trio load in the reaper

        problem = fuse_tree.missing()
        if problem:
            raise RunxError(f"--tree fuse: {problem}", "use --tree dir, or see docs/fuse.md")
    runtime = paths.private_dir(paths.runtime_dir())
    try:
        tree = trees.create(runtime, mode=o.tree, meta={
            "layer": layer.path if layer else None, "command": o.command[:8], "keep": o.keep})
    except OSError as e:
        raise RunxError(f"cannot create the environment in {runtime}: {e.strerror}",
                        "check free space and permissions, or set RUNX_RUNTIME_DIR")
    try:
        tree.entries = trees.entries(tree.path, interp, layer)
        if o.tree == "dir":
            trees.populate(tree)
        token = watch.prepare_self()
        checkpoint("tree")
    except BaseException as e:
        trees.discard(tree)
        if isinstance(e, OSError):
            raise RunxError(f"cannot create the environment in {runtime}: {e.strerror}",
                            "check free space and permissions, or set RUNX_RUNTIME_DIR")
        raise
    log(f"tree: {tree.path} ({o.tree}, {len(tree.entries)} entries"
        + (f" over layer {layer.path})" if layer else ")"))
    job = Job(tree.id, runtime, tree.path, tree.dev, tree.ino, tree.lock_fd, token,
              mode=o.tree, entries=tree.entries, cache=cache, keep=o.keep,
              finish_layer=layer.path if layer and not layer.compiled else None)
    handshake = watch.NEEDS_ARMING or o.tree == "fuse"
    try:
        if o.verbosity > 0:     # only -v pays for learning the reaper's pid
            reaper_pid = launch.start_reaper(job, needs_handshake=handshake, report_pid=True)
        else:
            launch.start_reaper(job, needs_handshake=handshake)
    except BaseException:
        trees.discard(tree)
        raise
    # From here on the reaper owns the tree: whatever happens to this process,
    # its exit wakes the reaper, which removes the tree.
    if o.verbosity > 0:
        then = ("then leaves the tree (--keep)" if o.keep else
                "then waits for any process still using the tree, then removes it")
        log(f"reaper: pid {reaper_pid or '?'} (own session); waits for pid {os.getpid()} "
            f"(this process, soon the command) to exit via {watch.NAME}"
            + (" (armed before exec)" if handshake else "") + f"; {then}")
    if o.no_cache and not spec.empty:
        from runner import uv

        uv.pip_install(os.path.join(tree.path, "bin", "python"), spec.uv_args(),
                       offline=o.offline, refresh=o.refresh, compile_bytecode=False,
                       verbosity=o.verbosity)
    for k in uv_env:
        os.environ.pop(k, None)
    base = os.environ if not extra_env else {**os.environ, **extra_env}
    env = launch.payload_env(tree.path, base)
    path = launch.resolve(o.command[0], env["PATH"])
    if o.keep and o.verbosity >= 0:
        _say(f"runx: keeping {tree.path}\n")
    log(f"exec {path} (pid {os.getpid()}): {' '.join(o.command[:6])}"
        + (" ..." if len(o.command) > 6 else ""))
    checkpoint("exec")
    launch.exec_payload(path, o.command, env)
