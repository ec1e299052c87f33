"""Command line: parse, then run the story of a run in order.

    what to install (requirements) → the cached layer (layers)
    → the ephemeral tree (trees) → reaper + exec (launch)

Everything from COMMAND on is the payload's, untouched, even arguments that
look like runx options.
"""

import os
import sys

from runner import __version__, checkpoint
from runner.errors import EXIT_USAGE, RunxError, UsageError

USAGE = "usage: runx [OPTIONS] [--] COMMAND [ARG...]\n       runx gc [--dry-run] | runx ls"

HELP = f"""{USAGE}

Run COMMAND in a throwaway Python environment that removes itself when the
command (and anything it left running) is done. runx replaces itself with
COMMAND: same PID, same parent, signals and exit status as if started directly.

  runx --with cowsay cowsay -t hello
  runx --with requests,rich python fetch.py
  runx --with-requirements requirements.txt python app.py

Options:
  --with REQ            install REQ (repeatable; commas separate several):
                          --with 'httpx>=0.27' --with rich,click
  --with-requirements FILE
                        install from a requirements file (repeatable):
                          --with-requirements requirements.txt
  -p, --python PY       base interpreter: a path, a command or a version:
                          --python /usr/bin/python3.11, --python 3.12
                        (default: the Python runx runs on)
  --index-url URL       package index to use instead of PyPI
  --extra-index-url URL additional index (repeatable)
  -f, --find-links PATH look for packages in a directory or page (repeatable):
                          --find-links ./wheels --no-index
  --no-index            use only --find-links
  --offline             never touch the network (cached layers may be stale)
  --refresh             re-resolve and rebuild the cached layer now
  --no-cache            install into the run's own tree; nothing persists
  --keep                do not remove the environment (prints its path)
  --tree dir|fuse       where the tree lives: a directory (default) or a FUSE
                        mount served by the reaper (Linux, needs pyfuse3);
                        also RUNX_TREE
  -q, --quiet           say nothing but errors
  -v, --verbose         explain each step (repeat for uv's own detail)
  --version             print runx's version
  -h, --help            this help

Commands:
  runx gc [--dry-run]   remove environments left by runs that were killed
  runx ls               list live environments

The command sees VIRTUAL_ENV and RUNX_ENV set to the environment, and PATH
with the environment's bin first; nothing else of its process changes.

Exit status: the command's own once it runs; before that 1 (environment
could not be built: uv's explanation is shown), 2 (usage), 126 (command not
executable), 127 (command not found).

Environment: RUNX_CACHE_DIR (layers; default ~/.cache/runx), RUNX_RUNTIME_DIR
(live trees; default $XDG_RUNTIME_DIR/runx, else RUNX_CACHE_DIR/runs),
RUNX_FRESHNESS (seconds before unpinned requirements are re-resolved; 86400),
RUNX_TREE.
"""


class Options:
    def __init__(self):
        self.with_: list = []
        self.with_requirements: list = []
        self.python = None
        self.index_url = None
        self.extra_index_urls: list = []
        self.find_links: list = []
        self.no_index = False
        self.offline = False
        self.refresh = False
        self.no_cache = False
        self.keep = False
        self.tree = os.environ.get("RUNX_TREE") or "dir"
        self.verbosity = 0
        self.command: list = []


_VALUE = {"--with", "--with-requirements", "--python", "-p", "--index-url",
          "--extra-index-url", "--find-links", "-f", "--tree"}
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
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in _VALUE:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"{name} needs a value")
                value = argv[i]
            if name == "--with":
                o.with_ += split_with(value)
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
        else:
            raise UsageError(f"unknown option {arg}",
                             "see 'runx --help'; put '--' before a command that starts with '-'")
        i += 1
    o.command = argv[i:]
    if o.tree not in ("dir", "fuse"):
        raise UsageError(f"--tree {o.tree}: expected 'dir' or 'fuse'")
    if o.keep and o.tree == "fuse":
        raise UsageError("--keep needs --tree dir",
                         "a FUSE tree lives in its reaper's memory and goes with it")
    if not o.command:
        raise UsageError("no command given", "try: runx --with cowsay cowsay -t hi")
    return o


def main(argv: list | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] in ("gc", "ls", "cache"):
            from runner import commands

            raise SystemExit(commands.main(argv))
        run(parse(argv))
    except RunxError as e:
        hint = f" ({e.hint})" if e.hint else ""
        sys.stderr.write(f"runx: error: {e.message}{hint}\n")
        raise SystemExit(e.code)
    except KeyboardInterrupt:
        # Die of the signal, as the caller expects of an interrupted command.
        import signal

        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        raise SystemExit(130)


def run(o: Options) -> None:
    from runner import interpreter, layers, launch, paths, trees
    from runner.requirements import Spec
    from reaper import watch
    from reaper.daemon import Job

    log = (lambda msg: sys.stderr.write(f"runx: {msg}\n")) if o.verbosity > 0 else (lambda msg: None)
    cache = paths.cache_dir()
    interp = interpreter.find(o.python, cache)
    log(f"interpreter: {interp.executable} ({interp.version})")
    spec = Spec(o.with_, o.with_requirements, o.index_url, o.extra_index_urls,
                o.find_links, o.no_index)
    if spec.requirement_files:
        from runner.requirements import read_requirements_file

        for f in spec.requirement_files:
            read_requirements_file(f)        # unreadable file: a usage error, now
    layer = None
    if not spec.empty and not o.no_cache:
        paths.private_dir(cache)
        layer = layers.ensure(spec, interp, cache, refresh=o.refresh, offline=o.offline,
                              verbosity=o.verbosity, log=log)

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
    log(f"tree: {tree.path} ({o.tree})")
    job = Job(tree.id, runtime, tree.path, tree.dev, tree.ino, tree.lock_fd, token,
              mode=o.tree, entries=tree.entries, cache=cache, keep=o.keep)
    try:
        launch.start_reaper(job, needs_handshake=watch.NEEDS_ARMING or o.tree == "fuse")
    except BaseException:
        trees.discard(tree)
        raise
    # From here on the reaper owns the tree: whatever happens to this process,
    # its exit wakes the reaper, which removes the tree.
    log(f"reaper started; waits via {watch.NAME}")
    if o.no_cache and not spec.empty:
        from runner import uv

        uv.pip_install(os.path.join(tree.path, "bin", "python"), spec.uv_args(),
                       offline=o.offline, refresh=o.refresh, compile_bytecode=False,
                       verbosity=o.verbosity)
    env = launch.payload_env(tree.path, os.environ)
    path = launch.resolve(o.command[0], env["PATH"])
    if o.keep and o.verbosity >= 0:
        sys.stderr.write(f"runx: keeping {tree.path}\n")
    log(f"exec {path}")
    checkpoint("exec")
    launch.exec_payload(path, o.command, env)
