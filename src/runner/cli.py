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
from ..errors import EXIT_ENV, EXIT_NOT_FOUND, Interrupted, RunxError, UsageError, say

TYPE_CHECKING = False     # not typing's: see tests/test_warm_path.py
if TYPE_CHECKING:
    from typing import NoReturn

    from .options import Options

# Two open-file limits, two facts: a run needs RUN_MIN_NOFILE (its reaper,
# which inherits the limit, scans /proc, watches holders and removes the tree
# through directory fds), a build needs build.BUILD_MIN_NOFILE (uv and the
# build's clean-up). tests/test_errors.py's test_tiny_open_file_limit.
RUN_MIN_NOFILE = 32


# Control characters in what the user typed (a newline in a --with value, a
# file name) would split the one error line: shown escaped, as repr would.
_ESCAPES = {c: repr(chr(c))[1:-1] for c in (*range(32), 127)}


def _one_line(text: str) -> str:
    return text.translate(_ESCAPES)


def main(argv: list | None = None) -> "NoReturn":
    argv = sys.argv[1:] if argv is None else argv
    if sys.unraisablehook is sys.__unraisablehook__:     # not through src/bin/runx
        from .. import boot

        boot.catch_dropped_signals()
    try:
        from .launch import hold_std_fds

        hold_std_fds()
        if argv and argv[0] in ("gc", "ls", "cache"):
            from . import commands

            Interrupted.doing = f"during runx {argv[0]}"

            raise SystemExit(commands.main(argv))
        if argv and argv[0] == "sync":
            from . import prepare

            o = prepare.command(argv[1:])
        elif argv and argv[0] == "kernel":
            from . import kernel

            o = kernel.command(argv[1:])
        elif argv and argv[0] == "editor":
            from . import editor

            o = editor.command(argv[1:])
        else:
            from .options import parse

            o = parse(argv)
        if o.show:
            raise SystemExit(_show(*o.show))
        run(o)
    except RunxError as e:
        hint = f" ({_one_line(e.hint)})" if e.hint else ""
        say(f"runx: error: {_one_line(e.message)}{hint}\n")
        raise SystemExit(e.code)
    except (Interrupted, KeyboardInterrupt) as e:
        die_of_signal(e.signum if isinstance(e, Interrupted) else 2)     # SIGINT
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


def die_of_signal(sig: int) -> "NoReturn":
    """What the signal interrupted was undone on the way here (the half-built
    layer, the tree or, once it exists, its reaper's to remove): say what,
    then die of the signal, as the caller expects of an interrupted command
    (runner/interrupt.py)."""
    import signal

    from .launch import flush_stdio

    try:
        name = signal.Signals(sig).name
    except ValueError:
        name = f"signal {sig}"
    say(f"runx: interrupted by {name} {Interrupted.doing}; the command did not run\n")
    flush_stdio()
    signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
    os.kill(os.getpid(), sig)
    raise SystemExit(128 + sig)


def _show(what: str, value) -> int:
    """--help, --version or --completion SHELL, on stdout."""
    if what == "help":
        from .helptext import help_text

        sys.stdout.write(help_text())
    elif what == "version":
        from ..version import __version__

        print(f"runx {__version__} ({_uv_version()})")
    else:
        from .completion import script

        sys.stdout.write(script(value))
    return 0


def _uv_version() -> str:
    """'uv 0.13.9, /path/to/uv': the uv runx drives, found as uv.binary()
    finds it (RUNX_UV, the uv package's binary beside this Python, PATH) and
    asked with one posix_spawn; without runner/uv.py, subprocess or re, so
    that --version stays as cheap as the launcher it is used to measure
    (tests/test_console_script.py)."""
    override = os.environ.get("RUNX_UV")
    dirs = [os.path.dirname(sys.executable)] + os.environ.get("PATH", "").split(os.pathsep)
    candidates = [override] if override else [os.path.join(d, "uv") for d in dirs if d]
    uv = next((c for c in candidates if os.access(c, os.X_OK)), None)
    if uv is None:
        return f"uv not found at RUNX_UV={override}" if override else \
            "uv not found: install uv, or set RUNX_UV"
    r, w = os.pipe()
    try:
        pid = os.posix_spawn(uv, [uv, "--version"], os.environ, file_actions=[
            (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0)])
    except OSError as e:
        os.close(r)
        os.close(w)
        return f"uv at {uv} cannot run: {e.strerror}"
    os.close(w)
    out = b""
    while len(out) < 4096:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    words = out.decode(errors="replace").split()
    if len(words) < 2 or words[0] != "uv":
        return f"uv at {uv} gave no version"
    return f"uv {words[1]}, {uv}"


class _Inputs:
    """What the user named besides --with, read and checked: env files'
    variables, the script's metadata, its [tool.uv] and lock, requirements
    files."""

    def __init__(self):
        self.reqs: list = []            # requirements (a script's dependencies)
        self.files: list = []           # requirements files
        self.extra_env: dict = {}       # for the payload (env files)
        self.meta = None                # the script's pep723.Metadata
        self.uv_env: dict = {}          # for uv, keyed
        self.quiet_env: dict = {}       # for uv, not keyed
        self.uv_args: list = []         # for uv pip install, keyed
        self.lock = None                # script_lock.Lock
        self.settings_file = None       # the [tool.uv] requirements file
        self.required_uv = None         # [tool.uv] required-version


def env_files(o: "Options") -> list:
    """--env-file, else UV_ENV_FILE (one path for uv run, space-separated for
    uvx), unless --no-env-file or UV_NO_ENV_FILE: as uv reads them."""
    if o.no_env_file or os.environ.get("UV_NO_ENV_FILE", "").lower() in ("1", "true", "yes", "on"):
        return []
    if o.env_files:
        return o.env_files
    value = os.environ.get("UV_ENV_FILE")
    if not value:
        return []
    return value.split() if o.tool or o.from_ is not None else [value]


def _inputs(o: "Options", log) -> _Inputs:
    """Everything the user named, read and checked before anything is made:
    env files, the script's metadata, requirements files."""
    got = _Inputs()
    files = env_files(o)
    if files:
        from . import dotenv

        for f in files:
            values = dotenv.parse(dotenv.load(f), {**os.environ, **got.extra_env}, f)
            log(f"env file {f}: {len(values)} variable{'s' if len(values) != 1 else ''}"
                + (f" ({', '.join(values)})" if values else ""))
            got.extra_env.update(values)
    if o.script == "-":
        got.meta = _stdin_script(o)
        got.reqs += got.meta.dependencies
    elif o.script:
        _script_inputs(o, got, log)
    for f in o.with_requirements:
        if f.endswith(".py"):
            from . import pep723

            m = pep723.read(f, what="requirements file")
            log(f"--with-requirements {f}: dependencies {m.dependencies or 'none'}")
            got.reqs += m.dependencies
        else:
            from .requirements import read_requirements_file

            read_requirements_file(f)        # unreadable file: a usage error, now
            got.files.append(f)
    return got


def _script_inputs(o: "Options", got: _Inputs, log) -> None:
    """A script's block, its [tool.uv] (pep723.tool_uv) and its lock
    (script_lock): as ``uv run SCRIPT`` reads them."""
    from . import pep723, script_lock

    script = o.script
    assert script is not None         # called for a script only
    from . import paths

    meta = got.meta = pep723.read(script, cache=paths.private_dir(paths.cache_dir()))
    if not meta.found:
        log(f"script {o.script}: no '# /// script' block, no extra packages")
        return
    log(f"script {o.script}: dependencies {meta.dependencies or 'none'}"
        + (f", requires-python {meta.requires_python!r}" if meta.requires_python else ""))
    # uv uses a lock only for a script with a block (Pep723Script).
    got.lock = script_lock.find(script, frozen=o.frozen, locked=o.locked)
    if got.lock is not None:
        log(f"script {o.script}: locked by {got.lock.path} ({len(got.lock.content)} bytes"
            + (", --frozen" if o.frozen else ", --locked" if o.locked else "") + ")")
    if not meta.tool_uv:
        got.reqs += [] if got.lock else meta.dependencies
        return
    no_sources = "--no-sources" in o.uv_options or os.environ.get(
        "UV_NO_SOURCES", "").lower() in ("1", "true", "yes", "on")
    t = pep723.tool_uv(meta, script, paths.private_dir(paths.cache_dir()),
                       locked=got.lock is not None, no_sources=no_sources)
    got.reqs += [] if got.lock else t.dependencies
    if t.requirements_file:
        got.files.append(t.requirements_file)
        got.settings_file = t.requirements_file if got.lock else None
    got.uv_env, got.quiet_env, got.uv_args = t.env, t.quiet, t.uv_args
    got.required_uv = t.required_version
    if t.again:                      # upgrade/reinstall in the block: a rebuild now, as uv run
        o.uv_run_args += t.again
        o.refresh = True
    if t.python_args and not any(a in o.uv_python_args for a in t.python_args[:1]):
        o.uv_python_args += t.python_args
    log(f"script {o.script}: [tool.uv] {', '.join(meta.tool_uv)}"
        + (f" -> -r {t.requirements_file}" if t.requirements_file else "")
        + (f", {' '.join(f'{k}={v}' for k, v in t.env.items())}" if t.env else ""))


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
    got = (_inputs(o, log) if o.with_requirements or o.env_files or o.script
           or "UV_ENV_FILE" in os.environ else _Inputs())
    extra_env, meta = got.extra_env, got.meta
    cache = paths.cache_dir()
    # Before anything in the cache is read (interpreter facts, layers): ours
    # and private, or refused (tests/test_trust.py). One stat.
    cache_exists = ownership.trusted(cache)
    interp = _interpreter(o, meta, cache, log)
    spec = Spec(o.tool + o.with_ + got.reqs, got.files, o.index_url, o.extra_index_urls,
                o.find_links, o.no_index, uv_options=got.uv_args + o.uv_options,
                editables=o.with_editable, uv_env=got.uv_env, quiet_env=got.quiet_env,
                lock=got.lock, settings_file=got.settings_file,
                tool=bool(o.tool) or o.from_ is not None)
    if o.tool and o.command:
        log(f"tool mode: {o.tool[0]} provides {o.command[0]}")
    layer = _layer(o, spec, interp, cache, cache_exists, log, got)
    Interrupted.doing = "before the command started"
    if o.prepare is not None:          # sync, kernel install, editor: no tree, no run
        raise SystemExit(o.prepare(o, spec, interp, layer, cache, log))
    if not o.command:
        raise _no_command(layer)
    _check_can_run(o)
    # A signal between the tree's lock and the reaper's fork would leave a
    # tree nobody removes: held off until the reaper owns it, then raised.
    held = launch.hold_signals()
    try:
        tree, token = _tree(o, interp, layer, log)
        started = _start_reaper(o, tree, token, layer, cache, log)
    finally:
        launch.release_signals(held)
    # From here on the reaper owns the tree: whatever happens to this process,
    # its exit wakes the reaper, which removes the tree. The middle process
    # forks it and exits while the lines below run; reaped before the exec.
    try:
        if o.tree == "dir" and not o.keep:
            _populate(tree)
        if o.no_cache and not spec.empty:
            from . import uv

            Interrupted.doing = "while installing the requirements"
            uv.pip_install(os.path.join(tree.path, "bin", "python"),
                           spec.uv_args() + o.uv_run_args, offline=o.offline, refresh=o.refresh,
                           compile_bytecode=False, verbosity=o.verbosity, env_extra=spec.uv_env)
            Interrupted.doing = "before the command started"
        env = launch.payload_env(tree.path,
                                 {**os.environ, **extra_env} if extra_env else os.environ)
        path = _resolve(o, env, layer)
        _warn_outside(o, path, tree.path)
    finally:
        _reaper_started(started, tree)
    if o.keep and o.verbosity >= 0:
        say(f"runx: keeping {tree.path}\n")
    log(f"exec {path} (pid {os.getpid()}): {' '.join(o.command[:6])}"
        + (" ..." if len(o.command) > 6 else ""))
    guard = sys.modules.get(__package__ + ".interrupt")   # loaded by a cold run only
    if guard is not None:
        guard.disarm()
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

        if pep723.check_python(meta, interp.version, o.script or "-", o.verbosity):
            log(f"requires-python {rp!r}: {interp.version} satisfies it")
    return interp


def _layer(o: "Options", spec, interp, cache: str, cache_exists: bool, log, got):
    """The cached layer for ``spec`` (found or built), or None: no
    requirements, or --no-cache (installed into the tree instead)."""
    from . import paths
    from ..reaper import store
    from .requirements import layer_key

    if spec.empty:
        log("no requirements: the environment is the bare interpreter")
        return None
    if not cache_exists:
        paths.private_dir(cache)
    if not o.refresh and not o.no_cache:
        layer = store.find(cache, layer_key(spec, interp), offline=o.offline, log=log)
        if layer is not None:
            return layer
    from . import interrupt     # a miss: a signal from here on undoes the build and says so

    interrupt.arm("while building the environment")
    _cold_script(o, spec, interp, cache, log, got)
    if o.no_cache:
        return None
    if spec.lock is not None and not o.refresh:
        # uv may have rewritten a stale lock: that one's layer may exist.
        layer = store.find(cache, layer_key(spec, interp), offline=o.offline, log=log)
        if layer is not None:
            return layer
    from . import build, editor     # a miss: never on the warm path

    layer = build.build(spec, interp, cache, refresh=o.refresh, offline=o.offline,
                        verbosity=o.verbosity, log=log, uv_run_args=o.uv_run_args)
    editor.follow(o, interp, layer, cache, log)      # an editor's interpreter made for it
    return layer


def _cold_script(o: "Options", spec, interp, cache: str, log, got) -> None:
    """A script's cold run: uv's required-version checked, its lock exported
    (script_lock.export, which may have uv rewrite a stale one)."""
    if got.required_uv:
        from . import pep440, uv

        version = uv.run(["--version"], what="asking uv its version").split()[1]
        if not pep440.satisfies(version, got.required_uv):
            raise RunxError(f"{o.script}: [tool.uv] required-version {got.required_uv!r} does "
                            f"not match the uv runx runs ({version})",
                            "change required-version, or set RUNX_UV to such a uv")
    if spec.lock is not None:
        from . import script_lock

        script_lock.export(spec.lock, o, spec, interp, cache, log)


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
    if 0 < nofile < RUN_MIN_NOFILE:
        raise RunxError(f"the open-file limit is {nofile}: too low for runx (at least "
                        f"{RUN_MIN_NOFILE})", "raise it, e.g. ulimit -n 1024")


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

    runtime = paths.make_runtime_dir(log)
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
            raise _not_provided(o, layer) from None
        if o.with_ and e.code == EXIT_NOT_FOUND and _names_a_tool(o.command[0]):
            e.hint = (f"uvx would install it: runx --from {o.command[0]} "
                      f"{' '.join('--with ' + w for w in o.with_)} {o.command[0]}")
        raise


def _names_a_tool(command: str) -> bool:
    return "/" not in command and not command.startswith("python") and command[:1].isalnum()


def _warn_outside(o: "Options", path: str, tree_path: str) -> None:
    """``runx --with PLUGIN TOOL`` is ``uv run --with``'s: TOOL comes from
    PATH when the environment lacks it. When that is another Python
    installation's console script (a uvx user meant TOOL to be installed),
    say so, with the spelling that installs it. Only when --with is given and
    the command came from outside the tree: a stat and a 256-byte read."""
    if (not o.with_ or o.verbosity < 0 or path.startswith(tree_path + "/")
            or not _names_a_tool(o.command[0])):
        return
    try:
        with open(path, "rb") as f:
            first = f.read(256).split(b"\n", 1)[0]
    except OSError:
        return
    venv = os.path.isfile(os.path.join(os.path.dirname(os.path.dirname(path)), "pyvenv.cfg"))
    if (first.startswith(b"#!") and b"python" in first) or venv:
        say(f"runx: warning: {o.command[0]} is not in the environment: running {path}, another "
            f"Python installation's, as uv run --with does (to install it as uvx would: "
            f"runx --from {o.command[0]} {' '.join('--with ' + w for w in o.with_)} "
            f"{o.command[0]})\n")


def _not_provided(o: "Options", layer) -> RunxError:
    """uvx's error for a package without the named command (exit 1): the
    package's own commands, then its dependencies' (by their RECORDs)."""
    from .requirements import normalize

    name = o.tool[0].split(" @ ", 1)[0]
    n = 0
    while n < len(name) and (name[n].isalnum() or name[n] in "._-"):
        n += 1
    command, package = o.command[0], normalize(name[:n])
    own, others = _commands_by_package(layer, package)
    hint = (f"runx --from {o.tool[0]} {own[0] if len(own) == 1 else 'COMMAND'}" if own
            else "name the package that provides it: --from PKG COMMAND")
    message = (f"{command}: the package {package} provides no command of that name"
               + (f"; its commands: {', '.join(own)}" if own else "; it has no commands")
               + (f"; its dependencies': {', '.join(others)}" if others else ""))
    return RunxError(message, hint, EXIT_ENV)


def _commands_by_package(layer, package: str) -> tuple:
    """(the package's commands, the other packages' commands) in the layer."""
    from .requirements import normalize

    names = {s["name"] for s in layer.scripts} if layer else set()
    own: set = set()
    try:
        entries = os.listdir(layer.site_packages) if layer else []
    except OSError:
        entries = []
    for d in entries:
        if not d.endswith(".dist-info") or normalize(d[:-10].rsplit("-", 1)[0]) != package:
            continue
        try:
            with open(os.path.join(layer.site_packages, d, "RECORD")) as f:
                for line in f:
                    path = line.split(",", 1)[0]
                    if "/bin/" in path and path.rsplit("/", 1)[-1] in names:
                        own.add(path.rsplit("/", 1)[-1])
        except OSError:
            pass
    return sorted(own), sorted(names - own)
