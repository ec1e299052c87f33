"""``runx kernel install|list|remove``: Jupyter kernels that start through runx.

``install`` is spelt as ``python -m ipykernel install`` (``--user``,
``--prefix``, ``--sys-prefix``, ``--name``, ``--display-name``, ``--env``) and
takes runx's own options for what the kernel gets (``--with``,
``--with-requirements``, ``--python``, ``--exclude-newer``, ``--tree``, a
PEP 723 SCRIPT ...). It writes a kernelspec whose argv is runx, by absolute
path, then those options, ``--with ipykernel`` unless named, and ``-m
ipykernel_launcher -f {connection_file}``; and it prepares that command
line's layer first (prepare.py: built, compiled, frozen), so the first start
is warm. The ``runx`` entry of the spec's ``metadata`` marks it as runx's: ``list`` shows
only those, ``remove`` refuses any other.

Where kernelspecs go, as Jupyter reads them (jupyter_core.paths, without
importing it): ``--user`` (the default here: ipykernel's default, the
system prefix, needs root) is the user data directory (``JUPYTER_DATA_DIR``,
else ``$XDG_DATA_HOME/jupyter`` or ``~/.local/share/jupyter``;
``~/Library/Jupyter`` on macOS), ``--sys-prefix`` is runx's own
``sys.prefix/share/jupyter``, ``--prefix DIR`` is ``DIR/share/jupyter``.
"""

import json
import os
import shutil
import sys

from ..errors import UsageError, RunxError, say
from ..reaper import watch
from .requirements import normalize

KERNEL_HELP = """\
usage: runx kernel install [--user | --sys-prefix | --prefix DIR] [--name NAME]
                           [--display-name TEXT] [--env NAME VALUE]...
                           [OPTIONS] [SCRIPT]
       runx kernel list
       runx kernel remove NAME...

install: write a Jupyter kernelspec that starts the kernel through runx, with
  what OPTIONS (runx's: --with, --with-requirements, --python, --exclude-newer,
  --tree ...) and a PEP 723 SCRIPT's dependencies name; ipykernel is added
  unless named. The environment is prepared now (as 'runx sync'), so the first
  start is warm; each start gets a fresh one, removed when the kernel exits.
  --user (default): the user's Jupyter data directory; --sys-prefix: runx's
  own prefix; --prefix DIR: DIR/share/jupyter. --name defaults to runx-SCRIPT
  or runx-PACKAGE; a kernel of that name that runx installed is replaced.
list: the kernels runx installed, where, and what they install.
remove: remove kernels runx installed (not others: jupyter kernelspec remove).
"""

LAUNCH = ["-m", "ipykernel_launcher", "-f", "{connection_file}"]


def command(argv: list):
    """``runx kernel ...`` (``argv`` without "kernel"): list and remove exit
    here; install returns the Options of the kernel's command line, marked to
    stop after the layer and write the spec (cli.run)."""
    if not argv or argv[0] in ("-h", "--help"):
        if not argv:
            raise UsageError("runx kernel: expected install, list or remove",
                             "e.g. runx kernel install --with pandas")
        print(KERNEL_HELP, end="")
        raise SystemExit(0)
    sub, rest = argv[0], argv[1:]
    if any(a in ("-h", "--help") for a in rest[:1]):
        print(KERNEL_HELP, end="")
        raise SystemExit(0)
    if sub == "list":
        _no_args(rest, "list")
        raise SystemExit(list_kernels())
    if sub in ("remove", "uninstall"):
        if not rest:
            raise UsageError("runx kernel remove: no kernel named", "e.g. runx kernel remove "
                             "runx-pandas; runx kernel list shows them")
        raise SystemExit(remove(rest))
    if sub != "install":
        raise UsageError(f"runx kernel: unknown command {sub}", "expected install, list or remove")
    return install(rest)


def _no_args(rest: list, sub: str) -> None:
    if rest:
        raise UsageError(f"runx kernel {sub}: unexpected argument {rest[0]}",
                         f"runx kernel {sub} takes none")


# --- where kernelspecs live ---------------------------------------------------


def data_dir() -> str:
    """Jupyter's user data directory, as jupyter_core.paths.jupyter_data_dir."""
    if os.environ.get("JUPYTER_DATA_DIR"):
        return os.path.abspath(os.environ["JUPYTER_DATA_DIR"])
    home = os.path.expanduser("~")
    if watch.DARWIN:
        return os.path.join(home, "Library", "Jupyter")
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    return os.path.join(xdg, "jupyter")


def search_dirs() -> list:
    """Every kernels directory Jupyter reads, in its order (jupyter_path)."""
    dirs = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    dirs += [data_dir(), os.path.join(sys.prefix, "share", "jupyter"),
             "/usr/local/share/jupyter", "/usr/share/jupyter"]
    out: list = []
    for d in dirs:
        k = os.path.join(d, "kernels")
        if k not in out:
            out.append(k)
    return out


def read_spec(path: str):
    """The kernel.json in ``path``, or None if there is none (or it is not JSON)."""
    try:
        with open(os.path.join(path, "kernel.json")) as f:
            spec = json.load(f)
    except (OSError, ValueError):
        return None
    return spec if isinstance(spec, dict) else None


def is_runx(spec) -> bool:
    meta = spec.get("metadata") if spec else None
    return isinstance(meta, dict) and isinstance(meta.get("runx"), dict)


# --- install ------------------------------------------------------------------

_VALUED = ("--prefix", "--name", "--display-name")


def install(argv: list):
    from . import prepare
    from .options import by_name, parse

    table = by_name()
    where, name, display, env = "user", None, None, {}
    runx_args: list = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        key, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if key in ("--user", "--sys-prefix"):
            where = key[2:]
            i += 1
            continue
        if key in _VALUED:
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"{key} needs a value", KERNEL_HELP.split("\n")[0])
                value = argv[i + 1]
                i += 1
            i += 1
            if key == "--prefix":
                where = value
            elif key == "--name":
                name = value
            else:
                display = value
            continue
        if key == "--env":
            if i + 2 >= len(argv):
                raise UsageError("--env needs a name and a value", "e.g. --env MPLBACKEND agg")
            env[argv[i + 1]] = argv[i + 2]
            i += 3
            continue
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        opt = table.get(key)
        runx_args.append(arg)
        if opt is not None and opt.metavar is not None and not eq and i + 1 < len(argv):
            runx_args.append(argv[i + 1])
            i += 1
        i += 1
    rest = argv[i + 1:] if i < len(argv) and argv[i] == "--" else argv[i:]
    script = None
    if rest:
        if len(rest) > 1 or not os.path.isfile(rest[0]):
            raise UsageError(f"runx kernel install: {rest[0]}: not a script",
                             "a kernel runs ipykernel: name its packages with --with, or give "
                             "a PEP 723 script whose dependencies it gets")
        script = os.path.abspath(rest[0])
    kernel_args = prepare.absolute_argv(runx_args)
    if script:
        kernel_args += ["--with-requirements", script]
    o = parse(kernel_args + LAUNCH)          # checks the options now, before anything is made
    if script and o.python is None:
        from . import pep723

        # The kernel reads the script's dependencies only (--with-requirements):
        # its requires-python becomes the interpreter request, as uv run honours it.
        rp = pep723.read(script).requires_python
        if rp:
            kernel_args += ["--python", rp]
            o = parse(kernel_args + LAUNCH)
    prepare.refuse(o, "runx kernel install")
    if o.show:
        raise UsageError(f"runx kernel install: {o.show[0]} is not an option of a kernel")
    wanted = [w for w in o.with_ if normalize(_name_of(w)) == "ipykernel"]
    if not wanted:
        kernel_args += ["--with", "ipykernel"]
        o = parse(kernel_args + LAUNCH)
    name = _kernel_name(name, script, o)
    kernels = _kernels_dir(where)
    dest = os.path.join(kernels, name)
    _check_free(dest, name)
    spec = _spec(kernel_args, name, display or _display_name(script, o), env)
    o.prepare = lambda o, s, interp, layer, cache, log: _installed(o, s, layer, cache, log, dest,
                                                                    spec)
    o.kernelspec = (dest, spec)          # what will be written where (shown by tests)
    return o


def _name_of(requirement: str) -> str:
    n = 0
    while n < len(requirement) and (requirement[n].isalnum() or requirement[n] in "._-"):
        n += 1
    return requirement[:n]


def _kernel_name(name, script, o) -> str:
    if name is not None:
        if not name or not all(c.isascii() and (c.isalnum() or c in "._-") for c in name):
            raise UsageError(f"--name {name!r}: a kernel name is letters, digits, '.', '_' "
                             "and '-' only", "e.g. --name runx-analysis")
        return name.lower()
    if script:
        base = os.path.splitext(os.path.basename(script))[0]
    else:
        names = [_name_of(w) for w in o.with_ if normalize(_name_of(w)) != "ipykernel"]
        base = names[0] if names else ""
    base = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "-"
                   for c in base.lower()).strip("-.")
    return f"runx-{base}" if base else "runx"


def _display_name(script, o) -> str:
    if script:
        return f"Python ({os.path.basename(script)}, runx)"
    names = [w for w in o.with_ if normalize(_name_of(w)) != "ipykernel"]
    return f"Python ({', '.join(names)}; runx)" if names else "Python (runx)"


def _kernels_dir(where: str) -> str:
    """The kernels directory for --user, --sys-prefix or --prefix DIR (made
    later if missing, as Jupyter's own install does); a missing --prefix DIR,
    or a user data directory under a home that does not exist, is an error."""
    if where == "user":
        base = data_dir()
        if not os.path.isdir(base) and not os.environ.get("JUPYTER_DATA_DIR"):
            home = os.path.expanduser("~")     # a home-less user: nowhere to make it
            if not os.path.isdir(home):
                raise RunxError(f"no Jupyter data directory: {base} cannot be made ({home} "
                                "does not exist)",
                                "set JUPYTER_DATA_DIR, or install with --prefix DIR")
    elif where == "sys-prefix":
        base = os.path.join(sys.prefix, "share", "jupyter")
    else:
        if not os.path.isdir(where):
            raise UsageError(f"--prefix {where}: no such directory",
                             "give an existing prefix, e.g. the venv Jupyter runs from")
        base = os.path.join(os.path.abspath(where), "share", "jupyter")
    return os.path.join(base, "kernels")


def _check_free(dest: str, name: str) -> None:
    if os.path.lexists(dest) and not is_runx(read_spec(dest)):
        raise RunxError(f"a kernel named {name} already exists in {os.path.dirname(dest)}, "
                        "and runx did not install it",
                        "choose another --name, or remove it: jupyter kernelspec remove "
                        + name)


def runx_command() -> list:
    """runx by absolute path (Jupyter started from a desktop launcher often
    has no ~/.local/bin on PATH); its module run by its interpreter when runx
    was started as ``python -m runx_env.runner``."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if os.path.basename(argv0) == "runx" and os.path.isfile(argv0):
        return [os.path.abspath(argv0)]
    found = shutil.which("runx")
    if found:
        return [os.path.abspath(found)]
    return [sys.executable, "-m", "runx_env.runner"]


def _spec(kernel_args: list, name: str, display: str, env: dict) -> dict:
    from ..version import __version__

    if os.environ.get("RUNX_CACHE_DIR") and "RUNX_CACHE_DIR" not in env:
        # The cache the layer is prepared in is the one the kernel must use.
        env = {**env, "RUNX_CACHE_DIR": os.path.abspath(os.environ["RUNX_CACHE_DIR"])}
    spec = {
        "argv": runx_command() + kernel_args + LAUNCH,
        "display_name": display,
        "language": "python",
        # The kernel is the process Jupyter started (runx execs it): SIGINT
        # to its PID or its process group reaches it, nothing in between.
        "interrupt_mode": "signal",
        "metadata": {"debugger": True,
                     "runx": {"version": __version__, "args": kernel_args}},
    }
    if env:
        spec["env"] = env
    return spec


def _installed(o, s, layer, cache: str, log, dest: str, spec: dict) -> int:
    """cli.run's end for ``install``: the layer finished (prepare.ready), then
    the spec written aside and renamed into place."""
    from . import prepare

    if layer is not None:
        prepare.ready(layer, cache, log)
    kernels = os.path.dirname(dest)
    try:
        os.makedirs(kernels, exist_ok=True)      # as jupyter's ensure_dir_exists
        tmp = os.path.join(kernels, f".{os.path.basename(dest)}.tmp-{os.getpid()}")
        os.mkdir(tmp)
        try:
            with open(os.path.join(tmp, "kernel.json"), "w") as f:
                json.dump(spec, f, indent=1)
                f.write("\n")
            replaced = os.path.lexists(dest)
            if replaced:
                _check_free(dest, os.path.basename(dest))    # still ours, just before
                shutil.rmtree(dest)
            os.rename(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    except OSError as e:
        raise RunxError(f"cannot write the kernelspec in {kernels}: {e.strerror or e}",
                        "check permissions, or use --user or --prefix DIR")
    if o.verbosity >= 0:
        say(f"runx: {'replaced' if replaced else 'installed'} kernel {os.path.basename(dest)} "
            f"in {dest} (environment prepared"
            + (f": {layer.path})\n" if layer is not None else ")\n"))
    return 0


# --- list, remove -------------------------------------------------------------


def runx_kernels() -> list:
    """[(name, path, spec)] of the kernels runx installed, first of a name wins."""
    out, seen = [], set()
    for d in search_dirs():
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for n in names:
            if n.startswith(".") or n.lower() in seen:
                continue
            path = os.path.join(d, n)
            spec = read_spec(path)
            if spec is None:
                continue
            seen.add(n.lower())
            if is_runx(spec):
                out.append((n, path, spec))
    return out


def list_kernels() -> int:
    rows = [(n, p, " ".join(spec["metadata"]["runx"].get("args", [])))
            for n, p, spec in runx_kernels()]
    if not rows:
        print("no kernels installed by runx (runx kernel install --with PKG makes one)")
        return 0
    head = ("NAME", "PATH", "INSTALLS")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(2)]
    for r in [head] + rows:
        print(f"{r[0].ljust(widths[0])}  {r[1].ljust(widths[1])}  {r[2]}".rstrip())
    return 0


def remove(names: list) -> int:
    for n in names:
        if n.startswith("-"):
            raise UsageError(f"runx kernel remove: unknown option {n}",
                             "usage: runx kernel remove NAME...")
    found = []
    for n in names:
        path = None
        for d in search_dirs():
            if read_spec(os.path.join(d, n)) is not None:
                path = os.path.join(d, n)
                break
        if path is None:
            raise RunxError(f"no kernel named {n}", "runx kernel list shows the kernels runx "
                            "installed")
        if not is_runx(read_spec(path)):
            raise RunxError(f"kernel {n} ({path}) was not installed by runx",
                            f"remove it with: jupyter kernelspec remove {n}")
        found.append((n, path))
    for n, path in found:
        try:
            shutil.rmtree(path)
        except OSError as e:
            raise RunxError(f"cannot remove kernel {n} ({path}): {e.strerror or e}",
                            "check the directory's permissions")
        print(f"removed kernel {n} ({path})")
    return 0
