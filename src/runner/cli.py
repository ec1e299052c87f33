"""Command line: parse, then run the story of a run in order.

    what to install (requirements, a script's PEP 723 block) → the cached
    layer (layers) → the ephemeral tree (trees) → reaper + exec (launch)

Everything from COMMAND on is the payload's, untouched, even arguments that
look like runx options. A first positional that is a script (see
runx_env.runner.pep723: an existing ``*.py`` file, or a file whose ``#!`` line
mentions runx) runs as ``python SCRIPT ARG...``; ``-m MODULE`` as
``python -m MODULE ARG...``.

Scripts, env files and completion load their modules only when used.
"""

import os
import sys

from runx_env.runner import __version__, fault_point
from runx_env.runner.errors import EXIT_ENV, EXIT_NOT_FOUND, RunxError, UsageError, say

TYPE_CHECKING = False     # not typing's: see tests/test_warm_path.py
if TYPE_CHECKING:
    from typing import NoReturn

MIN_NOFILE = 32


class Options:
    def __init__(self):
        self.with_: list = []
        self.with_requirements: list = []
        self.with_editable: list = []       # absolute paths of local projects
        self.from_ = None            # --from SPEC: the package that provides the command
        self.tool: list = []         # tool mode / --from: the command's package requirement
        self.python = None
        self.index_url = None
        self.extra_index_urls: list = []
        self.find_links: list = []
        self.no_index = False
        self.offline = False
        self.refresh = False
        self.no_cache = False
        self.no_project = False      # --no-project: no tool mode
        self.keep = False
        self.env_files: list = []
        self.directory = None
        self.uv_options: list = []       # to uv pip install; part of the layer's identity
        self.uv_run_args: list = []      # to uv pip install; not part of the identity
        self.uv_python_args: list = []   # to interpreter lookup (uv python find)
        self.tree = os.environ.get("RUNX_TREE") or "dir"
        self.verbosity = 0
        self.module = None          # -m MODULE
        self.script = None          # SCRIPT, as given (the command is python SCRIPT ...)
        self.command: list = []
        self.py_command = None      # a *.py name that is no file: a command of the environment?


def _table():
    from runx_env.runner.options import OPTIONS

    return {n: opt for opt in OPTIONS for n in opt.names}


def _unknown(arg: str, name: str, table: dict):
    from runx_env.runner.options import NOT_TAKEN

    if name in NOT_TAKEN:
        return UsageError(f"{name}: {NOT_TAKEN[name]}", None)
    import difflib      # the error path only

    close = difflib.get_close_matches(name, list(table), n=1, cutoff=0.75)
    if close:
        return UsageError(f"unknown option {arg}", f"did you mean {close[0]}?")
    return UsageError(f"unknown option {arg}",
                      "see 'runx --help'; put '--' before a command that starts with '-'")


def _is_python(name: str) -> bool:
    """python, python3, python3.12: the environment's interpreter, no package."""
    if not name.startswith("python"):
        return False
    rest = name[6:]
    major, _, minor = rest.partition(".")
    return rest == "" or (major.isdigit() and (minor == "" or minor.isdigit()))


def tool_requirement(spec: str, what: str) -> tuple:
    """uvx's reading of a package named on the command line (COMMAND or --from):
    NAME@VERSION means NAME==VERSION, NAME@latest means NAME re-resolved now,
    NAME@URL and anything else is a requirement as uv reads it (extras,
    specifiers, a URL, a path). Returns (requirement, command name, latest)."""
    n = 0
    while n < len(spec) and (spec[n].isalnum() or spec[n] in "._-"):
        n += 1
    name = spec[:n]
    rest = spec[n:]
    if rest.startswith("[") and "]" in rest:
        extras, rest = rest[:rest.index("]") + 1], rest[rest.index("]") + 1:]
    else:
        extras = ""
    if "://" in spec.split("@", 1)[0] or spec.startswith((".", "/", "~")) or not name:
        if os.path.exists(spec):         # a local wheel, sdist or project directory
            spec = os.path.abspath(spec)
        return spec, None, False
    if rest.startswith("@"):
        version = rest[1:].strip()
        if not version:
            raise UsageError(f"{what} {spec}: no version after '@'",
                             f"e.g. {name}@1.0 or {name}@latest")
        if version == "latest":
            return name + extras, name, True
        if "://" in version or version.startswith((".", "/")):
            return f"{name}{extras} @ {version}", name, False
        return f"{name}{extras}=={version}", name, False
    return spec, name, False


_SHEBANG_PEEK = 512     # bytes read to see a shebang line


def is_script(arg: str) -> bool:
    """Whether the first positional names a script to run with the
    environment's python (``runx SCRIPT [ARG...]``): an existing file whose
    name ends in ``.py``, or an existing file whose first line is a ``#!``
    line that mentions runx (``#!/usr/bin/env -S runx``: the kernel then runs
    ``runx /path/to/script ARG...``). Anything else is a command. One stat
    for a plain name, a 512-byte read for a file: a command given by path
    (``runx --with X ./tool``) loads nothing more."""
    if arg.endswith(".py"):
        return os.path.isfile(arg)
    if not os.path.isfile(arg):
        return False
    try:
        with open(arg, "rb") as f:
            first = f.read(_SHEBANG_PEEK).split(b"\n", 1)[0]
    except OSError:
        return False
    return first.startswith(b"#!") and b"runx" in first


def parse(argv: list) -> Options:
    from runx_env.runner.requirements import split_with

    o = Options()
    table = _table()
    layer_opts: list = []            # (opt, value): paths made absolute after --directory
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
        elif arg == "-vv":
            name, eq, value = "-v", "", ""
            o.verbosity = max(o.verbosity, 0) + 1
        else:
            name, eq, value = arg, "", ""
        opt = table.get(name)
        if opt is None:
            raise _unknown(arg, name, table)
        if opt.metavar is None:
            if eq:
                raise UsageError(f"{name} takes no value", f"write {name} alone")
            value = None
        elif not eq:
            i += 1
            if i >= len(argv):
                raise UsageError(f"{name} needs a value",
                                 f"{opt.names[-1]} {opt.metavar}: {opt.help}")
            value = argv[i]
        if opt.to == "layer":
            layer_opts.append((opt, value))
        elif opt.to == "uv":
            o.uv_run_args += _uv_spelling(opt, value)
            if opt.refresh:
                o.refresh = True
        elif opt.to == "python":
            o.uv_python_args += [opt.name] if value is None else [opt.name, value]
        elif name in ("--with", "-w"):
            reqs = split_with(value)
            for r in reqs:
                if r.startswith("-"):
                    raise UsageError(f"--with {r}: not a requirement",
                                     "options go before the command, e.g. --index-url URL")
            o.with_ += reqs
        elif opt.dest in ("python", "index_url", "directory", "from_", "tree"):
            setattr(o, opt.dest, value)
        elif opt.repeat:          # --with-requirements, --extra-index-url, -f, --env-file
            getattr(o, opt.dest).append(value)
        elif name == "--completion":
            from runx_env.runner.completion import script

            sys.stdout.write(script(value))
            raise SystemExit(0)
        elif opt.dest == "module":
            if not value:
                raise UsageError("-m needs a module name", "e.g. runx --with httpie -m httpie")
            o.module = value
            i += 1
            break                     # like python -m: the rest is the module's
        elif opt.dest == "help":
            from runx_env.runner.helptext import help_text

            sys.stdout.write(help_text())
            raise SystemExit(0)
        elif opt.dest == "version":
            print(f"runx {__version__}")
            raise SystemExit(0)
        elif opt.dest == "quiet":
            o.verbosity = -1
        elif opt.dest == "verbose":
            o.verbosity = max(o.verbosity, 0) + 1
        else:
            setattr(o, opt.dest, True)
        i += 1
    if o.directory is not None:
        # As uv's --directory: before anything else, so every relative path
        # (files, the script, the command's cwd) is relative to it.
        try:
            os.chdir(o.directory)
        except OSError as e:
            raise UsageError(f"--directory {o.directory}: {e.strerror}", "check the path")
    o.with_requirements = [os.path.abspath(f) for f in o.with_requirements]
    for path in o.with_editable:
        if not os.path.isdir(path):
            raise UsageError(f"--with-editable {path}: not a directory",
                             "give the path of a local project")
    o.with_editable = [os.path.abspath(p) for p in o.with_editable]
    o.find_links = [v if "://" in v else os.path.abspath(v) for v in o.find_links]
    for opt, value in layer_opts:
        if opt.kind == "file":
            value = os.path.abspath(value)
        o.uv_options += _uv_spelling(opt, value)
    rest = argv[i:]
    if o.module is not None:
        o.command = ["python", "-m", o.module, *rest]
    elif rest and rest[0] == "-":
        # `runx - < script.py`, as `uv run -`: the script's text becomes
        # `python -c TEXT ARG...` once read (cli._inputs), so sys.argv[0] is
        # "-c" and the working directory is on sys.path, as with uv.
        o.script = "-"
        o.command = ["python", "-c", "", *rest[1:]]
    elif rest:
        first = rest[0]
        if is_script(first):
            o.script = first
            o.command = ["python", first, *rest[1:]]
        elif first.endswith(".py"):
            from runx_env.runner import pep723

            if pep723.missing_script(first):
                if "/" in first:
                    raise UsageError(f"script {first}: no such file", "check the path")
                # Not a file, but maybe a console script of the environment
                # (jp.py, rst2html.py), as uv takes it: decided once the
                # layer exists (run).
                o.py_command = first
        if not o.command:
            o.command = rest
    if o.from_ is not None:
        req, _, latest = tool_requirement(o.from_, "--from")
        o.tool = [req]
        o.refresh = o.refresh or latest
    elif (o.command and not o.script and o.module is None and not o.no_project and not o.with_
          and o.py_command is None    # a *.py name is a script (uv run's reading), not a package
          and not o.with_requirements and not o.with_editable and not _is_python(o.command[0])
          and "/" not in o.command[0] and o.command[0][:1].isalnum()):
        # Tool mode, as uvx: with no requirement named at all, the command
        # names its own package (even if a command of that name is on PATH).
        # Not "-" (a script on stdin) and not a path (a file to run).
        req, cmd, latest = tool_requirement(o.command[0], "command")
        o.tool = [req]
        o.command = [cmd or o.command[0], *o.command[1:]]
        o.refresh = o.refresh or latest
    if o.tree not in ("dir", "fuse"):
        raise UsageError(f"--tree {o.tree}: expected 'dir' or 'fuse'")
    if o.keep and o.tree == "fuse":
        raise UsageError("--keep needs --tree dir",
                         "a FUSE tree lives in its reaper's memory and goes with it")
    if not o.command and (o.no_cache or not (o.with_ or o.with_requirements or o.with_editable)):
        raise UsageError("no command given", "try: runx --with cowsay cowsay -t hi")
    # With requirements and no command, run() says which commands the
    # environment has, as uv does, once it is built.
    return o


def _uv_spelling(opt, value) -> list:
    if opt.uv is not None:
        return [value if a == "{}" else a for a in opt.uv]
    return [opt.name] if value is None else [opt.name, value]


# Control characters in what the user typed (a newline in a --with value, a
# file name) would split the one error line: shown escaped, as repr would.
_ESCAPES = {c: repr(chr(c))[1:-1] for c in (*range(32), 127)}


def _one_line(text: str) -> str:
    return text.translate(_ESCAPES)


def main(argv: list | None = None) -> "NoReturn":
    argv = sys.argv[1:] if argv is None else argv
    from runx_env.runner.launch import hold_std_fds

    hold_std_fds()
    try:
        if argv and argv[0] in ("gc", "ls", "cache"):
            from runx_env.runner import commands

            raise SystemExit(commands.main(argv))
        run(parse(argv))
    except RunxError as e:
        hint = f" ({_one_line(e.hint)})" if e.hint else ""
        say(f"runx: error: {_one_line(e.message)}{hint}\n")
        raise SystemExit(e.code)
    except KeyboardInterrupt:
        # Die of the signal, as the caller expects of an interrupted command.
        import signal

        from runx_env.runner.launch import flush_stdio

        flush_stdio()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        raise SystemExit(130)
    except Exception as e:
        if isinstance(e, OSError) and e.errno in (24, 23):   # EMFILE, ENFILE
            # Not a bug: a tiny RLIMIT_NOFILE (ulimit -n) can fail any open.
            say(f"runx: error: too many open files: {_one_line(str(e))} "
                 "(raise the open-file limit, ulimit -n)\n")
            raise SystemExit(EXIT_ENV)
        # A bug, not a user error: still one line, no traceback, unless asked.
        if os.environ.get("RUNX_DEBUG"):
            raise
        say(f"runx: error: internal error: {type(e).__name__}: {_one_line(str(e))} "
                         "(a bug in runx; RUNX_DEBUG=1 shows the traceback)\n")
        raise SystemExit(EXIT_ENV)


def _inputs(o: Options, log):
    """Everything the user named, read and checked before anything is made:
    env files, the script's metadata, requirements files. Returns
    (extra requirements, requirement files, payload variables, script metadata)."""
    extra_env: dict = {}
    if o.env_files:
        from runx_env.runner import dotenv

        for f in o.env_files:
            values = dotenv.parse(dotenv.load(f), {**os.environ, **extra_env}, f)
            log(f"env file {f}: {len(values)} variable{'s' if len(values) != 1 else ''}"
                + (f" ({', '.join(values)})" if values else ""))
            extra_env.update(values)
    reqs: list = []
    files: list = []
    meta = None
    if o.script == "-":
        meta = _stdin_script(o)
        reqs += meta.dependencies
    elif o.script:
        from runx_env.runner import pep723

        meta = pep723.read(o.script)
        if meta.found:
            log(f"script {o.script}: dependencies {meta.dependencies or 'none'}"
                + (f", requires-python {meta.requires_python!r}" if meta.requires_python else ""))
        elif meta.unclosed and o.verbosity >= 0:
            say(f"runx: warning: {o.script}, line {meta.unclosed.line}: "
                 f"{meta.unclosed.describe()}; the block is ignored, so none of its "
                 "dependencies are installed\n")
        else:
            log(f"script {o.script}: no '# /// script' block, no extra packages")
        if meta.tool_uv:
            from runx_env.runner import paths

            t = pep723.tool_uv(meta, o.script, paths.private_dir(paths.cache_dir()))
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
            from runx_env.runner import pep723

            m = pep723.read(f, what="requirements file")
            log(f"--with-requirements {f}: dependencies {m.dependencies or 'none'}")
            reqs += m.dependencies
        else:
            from runx_env.runner.requirements import read_requirements_file

            read_requirements_file(f)        # unreadable file: a usage error, now
            files.append(f)
    return reqs, files, extra_env, meta


# Linux's limit on one argument (MAX_ARG_STRLEN, 32 pages), less a margin.
_ARG_MAX = 128 * 1024 - 256


def _stdin_script(o: Options):
    """Read `runx -`'s script from stdin, whole, as `uv run -` does (the
    payload then finds stdin at its end), into ``python -c TEXT``."""
    from runx_env.runner import pep723

    try:
        data = sys.stdin.buffer.read() if sys.stdin is not None else b""
    except OSError as e:
        raise UsageError(f"cannot read the script from stdin: {e.strerror}",
                         "pipe or redirect a script: runx - < script.py")
    text = data.decode("utf-8", "surrogateescape")
    # It travels as one argument of python -c (see parse): a NUL byte or
    # more than the kernel takes for one argument cannot.
    if "\0" in text:
        raise UsageError("the script on stdin contains a NUL byte",
                         "save it to a file and run: runx FILE.py")
    if len(data) > _ARG_MAX:
        raise UsageError(f"the script on stdin is too long for python -c ({len(data)} bytes, "
                         f"at most {_ARG_MAX})", "save it to a file and run: runx FILE.py")
    o.command[2] = text
    if "# /// script" not in text:
        return pep723.Metadata()
    return pep723.parse(text, "<stdin>")


def _no_command(layer) -> UsageError:
    """`runx --with X` and nothing to run: name what the environment offers."""
    names = [s["name"] for s in layer.scripts] if layer else []
    if not names:
        return UsageError("no command given",
                          "the environment has no commands of its own: try python, or -m MODULE")
    return UsageError("no command given",
                      f"the environment's commands: {', '.join(names)}; or python, -m MODULE")


def run(o: Options) -> "NoReturn":
    """A run, in order: what to install, the interpreter, the cached layer,
    the tree, the reaper, the exec. Until the reaper starts, a failure
    leaves nothing behind; from then on the reaper owns the tree."""
    from runx_env.runner import launch, paths
    from runx_env.runner.requirements import Spec

    log = (lambda msg: say(f"runx: {msg}\n")) if o.verbosity > 0 else (lambda msg: None)
    if o.with_requirements or o.env_files or o.script:
        script_reqs, req_files, extra_env, meta = _inputs(o, log)
    else:
        script_reqs, req_files, extra_env, meta = [], [], None, None
    cache = paths.cache_dir()
    # Before anything in the cache is read (interpreter facts, layers): ours
    # and private, or refused (tests/test_trust.py). One stat.
    cache_exists = paths.trusted(cache)
    interp = _interpreter(o, meta, cache, log)
    spec = Spec(o.tool + o.with_ + script_reqs, req_files, o.index_url, o.extra_index_urls,
                o.find_links, o.no_index, uv_options=o.uv_options, editables=o.with_editable,
                uv_env=getattr(meta, "uv_env", None))
    if o.tool:
        log(f"tool mode: {o.tool[0]} provides {o.command[0]}")
    layer = _layer(o, spec, interp, cache, cache_exists, log)
    if not o.command:
        raise _no_command(layer)
    _check_can_run(o)
    tree, token = _tree(o, interp, layer, log)
    started = _start_reaper(o, tree, token, layer, cache, log)
    # From here on the reaper owns the tree: whatever happens to this process,
    # its exit wakes the reaper, which removes the tree. The middle process
    # forks it and exits while the lines below run; reaped before the exec.
    try:
        if o.tree == "dir" and not o.keep:
            _populate(tree)
        if o.no_cache and not spec.empty:
            from runx_env.runner import uv

            uv.pip_install(os.path.join(tree.path, "bin", "python"),
                           spec.uv_args() + o.uv_run_args, offline=o.offline, refresh=o.refresh,
                           compile_bytecode=False, verbosity=o.verbosity, env_extra=spec.uv_env)
        env = launch.payload_env(tree.path,
                                 {**os.environ, **extra_env} if extra_env else os.environ)
        path = _resolve(o, env, layer)
    finally:
        _reaper_started(started, tree)
    if o.keep and o.verbosity >= 0:
        say(f"runx: keeping {tree.path}\n")
    log(f"exec {path} (pid {os.getpid()}): {' '.join(o.command[:6])}"
        + (" ..." if len(o.command) > 6 else ""))
    fault_point("exec")
    launch.exec_payload(path, o.command, env)


def _interpreter(o: Options, meta, cache: str, log):
    """The interpreter uv would choose; a script's requires-python checked."""
    from runx_env.runner import interpreter

    rp = meta.requires_python if meta is not None else None
    choice = interpreter.choose(o.python, script=o.script, requires_python=rp)
    interp = interpreter.find(choice, cache, uv_python_args=o.uv_python_args,
                              script=o.script)
    log(f"interpreter: {interp.executable} ({interp.version}), "
        + (f"for {choice.request!r} from {choice.source}" if choice.request else choice.source))
    if rp:
        from runx_env.runner import pep723

        if pep723.check_python(meta, interp.version, o.script, o.verbosity):
            log(f"requires-python {rp!r}: {interp.version} satisfies it")
    return interp


def _layer(o: Options, spec, interp, cache: str, cache_exists: bool, log):
    """The cached layer for ``spec`` (found or built), or None: no
    requirements, or --no-cache (installed into the tree instead)."""
    from runx_env.runner import layers, paths

    if spec.empty:
        log("no requirements: the environment is the bare interpreter")
        return None
    if o.no_cache:
        return None
    if not cache_exists:
        paths.private_dir(cache)
    if not o.refresh:
        layer = layers.find(spec, interp, cache, offline=o.offline, log=log)
        if layer is not None:
            return layer
    from runx_env.runner import build     # a miss: never on the warm path

    return build.build(spec, interp, cache, refresh=o.refresh, offline=o.offline,
                       verbosity=o.verbosity, log=log, uv_run_args=o.uv_run_args)


def _check_can_run(o: Options) -> None:
    """Refuse, before anything is made, what would leave a tree behind."""
    if o.tree == "fuse":
        from runx_env.reaper import fuse_tree     # cheap: pyfuse3 and trio load in the reaper

        problem = fuse_tree.missing()
        if problem:
            raise RunxError(f"--tree fuse: {problem}", "use --tree dir, or see docs/fuse.md")
    # The reaper inherits the open-file limit and needs a few dozen fds for
    # the lease scan and the removal: under a tiny limit it would leave the
    # tree behind (os.sysconf: no import).
    nofile = os.sysconf("SC_OPEN_MAX")
    if 0 < nofile < MIN_NOFILE:
        raise RunxError(f"the open-file limit is {nofile}: too low for runx (at least "
                        f"{MIN_NOFILE})", "raise it, e.g. ulimit -n 1024")


def _cannot_create(runtime: str, e: OSError) -> RunxError:
    return RunxError(f"cannot create the environment in {runtime}: {e.strerror}",
                     "check free space and permissions, or set RUNX_RUNTIME_DIR")


def _tree(o: Options, interp, layer, log) -> tuple:
    """The run's tree: locked, made and described, and the token the reaper
    will watch this process by: (tree, token). Discarded if anything fails
    before the reaper takes it. A ``--tree dir`` tree is written here only
    with --keep; otherwise after the reaper is forked (run, _populate), in
    the time the runner waits for the double fork anyway."""
    from runx_env.runner import paths, trees, venv
    from runx_env.reaper import watch

    runtime = paths.private_dir(paths.runtime_dir())
    try:
        tree = trees.create(runtime, mode=o.tree, meta={
            "layer": layer.path if layer else None, "command": o.command[:8], "keep": o.keep})
    except OSError as e:
        raise _cannot_create(runtime, e)
    try:
        tree.entries = venv.entries(tree.path, interp, layer)
        if o.tree == "dir" and o.keep:
            # A kept tree outlives its run: never kept half-written.
            trees.populate(tree)
        token = watch.prepare_self()
        fault_point("tree")
    except BaseException as e:
        trees.discard(tree)
        if isinstance(e, OSError):
            raise _cannot_create(runtime, e)
        raise
    log(f"tree: {tree.path} ({o.tree}, {len(tree.entries)} entries"
        + (f" over layer {layer.path})" if layer else ")"))
    return tree, token


def _populate(tree) -> None:
    """Write a ``--tree dir`` tree the reaper already owns: if this fails,
    the runner exits with the error and the reaper removes the tree."""
    from runx_env.runner import trees

    try:
        trees.populate(tree)
    except OSError as e:
        raise _cannot_create(tree.runtime, e)


def _start_reaper(o: Options, tree, token, layer, cache: str, log):
    """Hand the tree (and the layer's shared lock) to a detached reaper;
    the started reaper, for _reaper_started."""
    from runx_env.runner import launch, trees
    from runx_env.reaper import watch
    from runx_env.reaper.handoff import Job

    try:
        job = Job(tree, token, cache=cache, keep=o.keep,
                  compile_layer=layer.path if layer and not layer.compiled else None,
                  layer_fd=layer.fd if layer else None)
        # Only -v pays for learning the reaper's pid.
        started = launch.start_reaper(job, report_pid=o.verbosity > 0)
    except BaseException:
        trees.discard(tree)
        raise
    if o.verbosity > 0 or job.needs_handshake:
        reaper_pid = _reaper_started(started, tree)
    if o.verbosity > 0:
        then = ("then leaves the tree (--keep)" if o.keep else
                "then waits for any process still using the tree, then removes it")
        log(f"reaper: pid {reaper_pid or '?'} (own session); waits for pid {os.getpid()} "
            f"(this process, soon the command) to exit via {watch.NAME}"
            + (" (armed before exec)" if job.needs_handshake else "") + f"; {then}")
    return started


def _reaper_started(started, tree):
    """Reap the reaper's middle process (launch.Started.wait); if the reaper
    could not start or refused the run, the tree is the runner's to remove."""
    from runx_env.runner import trees

    try:
        return started.wait()
    except BaseException:
        trees.discard(tree)
        raise


def _resolve(o: Options, env: dict, layer) -> str:
    """The command's path on the payload's PATH, with uv's (uvx's) errors."""
    from runx_env.runner import launch

    try:
        return launch.resolve(o.command[0], env["PATH"])
    except RunxError as e:
        if o.py_command is not None and e.code == EXIT_NOT_FOUND:
            # A *.py name that is neither a file nor a command: the user meant a script.
            raise UsageError(f"script {o.py_command}: no such file", "check the path") from None
        if o.tool and e.code == EXIT_NOT_FOUND:     # uvx's case: the package lacks that command
            provided = sorted(s["name"] for s in layer.scripts) if layer else []
            e.message = (f"{o.command[0]}: {o.tool[0]} provides no command of that name"
                         + (f"; it provides: {', '.join(provided)}" if provided else ""))
            e.hint = "name the package with --from PKG COMMAND"
        raise
