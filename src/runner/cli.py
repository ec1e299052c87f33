"""runx's entry point: the one error boundary, then the story of a run in order.

    what to install (requirements, a script's PEP 723 block) → the cached
    layer (reaper/store.py) → the ephemeral tree (trees) → reaper + exec (launch)

What the command line means is options.py's (``parse`` returns Options);
``run`` reads top to bottom as the story. Scripts, env files and
completion load their modules only when used.
"""

import os
import sys

from ..faults import fault_point
from ..errors import EXIT_ENV, EXIT_NOT_FOUND, RunxError, UsageError, say

TYPE_CHECKING = False     # not typing's: see tests/test_warm_path.py
if TYPE_CHECKING:
    from typing import NoReturn

    from .options import Options

MIN_NOFILE = 32


# Control characters in what the user typed (a newline in a --with value, a
# file name) would split the one error line: shown escaped, as repr would.
_ESCAPES = {c: repr(chr(c))[1:-1] for c in (*range(32), 127)}


def _one_line(text: str) -> str:
    return text.translate(_ESCAPES)


def main(argv: list | None = None) -> "NoReturn":
    argv = sys.argv[1:] if argv is None else argv
    from .launch import hold_std_fds

    hold_std_fds()
    try:
        if argv and argv[0] in ("gc", "ls", "cache"):
            from . import commands

            raise SystemExit(commands.main(argv))
        from .options import parse

        o = parse(argv)
        if o.show:
            raise SystemExit(_show(*o.show))
        run(o)
    except RunxError as e:
        hint = f" ({_one_line(e.hint)})" if e.hint else ""
        say(f"runx: error: {_one_line(e.message)}{hint}\n")
        raise SystemExit(e.code)
    except KeyboardInterrupt:
        # Die of the signal, as the caller expects of an interrupted command.
        import signal

        from .launch import flush_stdio

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


def _show(what: str, value) -> int:
    """--help, --version or --completion SHELL, on stdout."""
    if what == "help":
        from .helptext import help_text

        sys.stdout.write(help_text())
    elif what == "version":
        from ..version import __version__

        print(f"runx {__version__}")
    else:
        from .completion import script

        sys.stdout.write(script(value))
    return 0


def _inputs(o: "Options", log):
    """Everything the user named, read and checked before anything is made:
    env files, the script's metadata, requirements files. Returns
    (extra requirements, requirement files, payload variables, script metadata)."""
    extra_env: dict = {}
    if o.env_files:
        from . import dotenv

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
        from . import pep723

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
            from . import paths

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
            from . import pep723

            m = pep723.read(f, what="requirements file")
            log(f"--with-requirements {f}: dependencies {m.dependencies or 'none'}")
            reqs += m.dependencies
        else:
            from .requirements import read_requirements_file

            read_requirements_file(f)        # unreadable file: a usage error, now
            files.append(f)
    return reqs, files, extra_env, meta


# Linux's limit on one argument (MAX_ARG_STRLEN, 32 pages), less a margin.
_ARG_MAX = 128 * 1024 - 256


def _stdin_script(o: "Options"):
    """Read `runx -`'s script from stdin, whole, as `uv run -` does (the
    payload then finds stdin at its end), into ``python -c TEXT``."""
    from . import pep723

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


def run(o: "Options") -> "NoReturn":
    """A run, in order: what to install, the interpreter, the cached layer,
    the tree, the reaper, the exec. Until the reaper starts, a failure
    leaves nothing behind; from then on the reaper owns the tree."""
    from . import launch, paths
    from ..reaper import ownership
    from .requirements import Spec

    log = (lambda msg: say(f"runx: {msg}\n")) if o.verbosity > 0 else (lambda msg: None)
    if o.with_requirements or o.env_files or o.script:
        script_reqs, req_files, extra_env, meta = _inputs(o, log)
    else:
        script_reqs, req_files, extra_env, meta = [], [], None, None
    cache = paths.cache_dir()
    # Before anything in the cache is read (interpreter facts, layers): ours
    # and private, or refused (tests/test_trust.py). One stat.
    cache_exists = ownership.trusted(cache)
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
            from . import uv

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


def _interpreter(o: "Options", meta, cache: str, log):
    """The interpreter uv would choose; a script's requires-python checked."""
    from . import interpreter

    rp = meta.requires_python if meta is not None else None
    choice = interpreter.choose(o.python, script=o.script, requires_python=rp)
    interp = interpreter.find(choice, cache, uv_python_args=o.uv_python_args,
                              script=o.script)
    log(f"interpreter: {interp.executable} ({interp.version}), "
        + (f"for {choice.request!r} from {choice.source}" if choice.request else choice.source))
    if rp:
        from . import pep723

        if pep723.check_python(meta, interp.version, o.script, o.verbosity):
            log(f"requires-python {rp!r}: {interp.version} satisfies it")
    return interp


def _layer(o: "Options", spec, interp, cache: str, cache_exists: bool, log):
    """The cached layer for ``spec`` (found or built), or None: no
    requirements, or --no-cache (installed into the tree instead)."""
    from . import paths
    from ..reaper import store
    from .requirements import layer_key

    if spec.empty:
        log("no requirements: the environment is the bare interpreter")
        return None
    if o.no_cache:
        return None
    if not cache_exists:
        paths.private_dir(cache)
    if not o.refresh:
        layer = store.find(cache, layer_key(spec, interp), offline=o.offline, log=log)
        if layer is not None:
            return layer
    from . import build     # a miss: never on the warm path

    return build.build(spec, interp, cache, refresh=o.refresh, offline=o.offline,
                       verbosity=o.verbosity, log=log, uv_run_args=o.uv_run_args)


def _check_can_run(o: "Options") -> None:
    """Refuse, before anything is made, what would leave a tree behind."""
    if o.tree == "fuse":
        from ..reaper import fuse_tree     # cheap: pyfuse3 loads in the reaper

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


def _tree(o: "Options", interp, layer, log) -> tuple:
    """The run's tree: locked, made and described, and the token the reaper
    will watch this process by: (tree, token). Discarded if anything fails
    before the reaper takes it. A ``--tree dir`` tree is written here only
    with --keep; otherwise after the reaper is forked (run, _populate), in
    the time the runner waits for the double fork anyway."""
    from . import paths, trees, venv
    from ..reaper import watch

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
    from . import trees

    try:
        trees.populate(tree)
    except OSError as e:
        raise _cannot_create(tree.runtime, e)


def _start_reaper(o: "Options", tree, token, layer, cache: str, log):
    """Hand the tree (and the layer's shared lock) to a detached reaper;
    the started reaper, for _reaper_started."""
    from . import launch, trees
    from ..reaper import watch
    from ..reaper.handoff import Job

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
    from . import trees

    try:
        return started.wait()
    except BaseException:
        trees.discard(tree)
        raise


def _resolve(o: "Options", env: dict, layer) -> str:
    """The command's path on the payload's PATH, with uv's (uvx's) errors."""
    from . import launch

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
