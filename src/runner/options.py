"""The command line: the one table of runx's options, and what it means.

The table (OPTIONS) drives the parser (``parse``), --help (helptext.py),
shell completion (completion.py) and the README's option list
(scripts/readme-options writes it into a marked block). Each option carries
its own action and default: adding an option is one row here, and the
row says everything about it.

Where an option's value goes (``to``, the README's "goes to" column), and
its action unless the row names another:

    runx     kept on Options (``dest``): a value is stored, a repeatable
             value appended, a flag set True
    layer    passed to ``uv pip install`` and part of the layer's identity
             (Options.uv_options; file values made absolute): it changes
             what the layer contains
    uv       passed to uv, not part of the identity (Options.uv_run_args):
             it changes how uv talks or shows progress, or (``refresh``)
             asks for a rebuild now
    python   interpreter lookup (Options.uv_python_args)

uv's spelling is kept wherever runx takes an option at all, so a ``uvx`` or
``uv run --with`` command line works unchanged. A uv option runx does not
take is in NOT_TAKEN with the reason, and gets that reason as its error.

What the positionals mean (a script, ``-`` for stdin, ``-m``, tool mode's
package) is decided here too, with string operations and at most a stat
and a 512-byte read: a warm run parses on every start.
"""

import os

from ..errors import UsageError

TYPE_CHECKING = False     # not typing's: see tests/test_warm_path.py
if TYPE_CHECKING:
    from typing import Any

STOP = object()      # an action's answer: the rest of argv is the payload's


class Opt:
    __slots__ = ("names", "metavar", "help", "category", "to", "kind", "repeat", "uv",
                 "refresh", "dest", "action", "default")

    def __init__(self, names, metavar, help, category, to, *, kind=None, repeat=False,
                 uv=None, refresh=False, dest=None, action=None, default=None):
        self.names = names          # ("-p", "--python"): short first, canonical last
        self.metavar = metavar      # None: a flag
        self.help = help            # one line; the README and --help show it
        self.category = category
        self.to = to                # runx | layer | uv | python
        self.kind = kind            # completion of the value: file, dir, python, tree,
        #                             shell, text, or a tuple of choices
        self.repeat = repeat
        self.uv = uv                # how uv pip install spells it, if not the same:
        #                             a list; "{}" stands for the value
        self.refresh = refresh      # implies a rebuild of the layer now
        self.dest = dest or names[-1].lstrip("-").replace("-", "_")
        # action(options, opt, value) -> None or STOP; value is None for a flag
        self.action = action or _default_action(to, metavar, repeat)
        # The attribute's start value (runx options): a callable is called
        # per parse; repeatable options start as a new list.
        self.default = default

    @property
    def name(self) -> str:
        return self.names[-1]

    def uv_spelling(self, value) -> list:
        """The option as uv takes it, with ``value`` (None for a flag)."""
        if self.uv is not None:
            return [value if a == "{}" else a for a in self.uv]
        return [self.name] if value is None else [self.name, value]


# --- Actions ---------------------------------------------------------------


def _store(o, opt, value):
    setattr(o, opt.dest, value)


def _append(o, opt, value):
    getattr(o, opt.dest).append(value)


def _flag(o, opt, value):
    setattr(o, opt.dest, True)


def _layer(o, opt, value):
    o.layer_args.append((opt, value))      # made absolute after --directory (finish)


def _uv(o, opt, value):
    o.uv_run_args += opt.uv_spelling(value)
    if opt.refresh:
        o.refresh = True


def _python(o, opt, value):
    o.uv_python_args += opt.uv_spelling(value)


def _default_action(to, metavar, repeat):
    if to == "layer":
        return _layer
    if to == "uv":
        return _uv
    if to == "python":
        return _python
    if metavar is None:
        return _flag
    return _append if repeat else _store


def _with(o, opt, value):
    from .requirements import split_with

    for r in split_with(value):
        if r.startswith("-"):
            raise UsageError(f"--with {r}: not a requirement",
                             "options go before the command, e.g. --index-url URL")
        o.with_.append(r)


def _module(o, opt, value):
    if not value:
        raise UsageError("-m needs a module name", "e.g. runx --with httpie -m httpie")
    o.module = value
    return STOP                  # like python -m: the rest is the module's


def _quiet(o, opt, value):
    o.verbosity = min(o.verbosity, 0) - 1       # -q: -1, -qq: -2 (uv's "silent")


def _verbose(o, opt, value):
    o.verbosity = max(o.verbosity, 0) + 1


def _show(o, opt, value):
    """--help, --version, --completion: print something and exit 0, whatever
    follows (cli.main prints it: what it prints is generated from this
    table, by modules that import it)."""
    o.show = (opt.dest, value)
    return STOP


def _tree_default():
    return os.environ.get("RUNX_TREE") or "dir"


# --- The table ---------------------------------------------------------------

R, I, RES, INS, BLD, PY, RUN, OUT = ("Requirements", "Index", "Resolver", "Installer",
                                     "Build", "Python", "Run", "Output and network")
_PRE = ("disallow", "allow", "if-necessary", "explicit", "if-necessary-or-explicit")

OPTIONS = [
    # --- what to install
    Opt(("-w", "--with"), "REQ", "install REQ (repeatable; commas separate several)",
        R, "runx", kind="text", repeat=True, dest="with_", action=_with),
    Opt(("--with-requirements",), "FILE",
        "install from a requirements file, or the dependencies of a PEP 723 script (FILE.py)",
        R, "runx", kind="file", repeat=True),
    Opt(("--with-editable",), "PATH", "install the local project at PATH editable: edits to "
        "its sources show on the next run, no rebuild (repeatable)", R, "runx", kind="dir",
        repeat=True, dest="with_editable"),
    Opt(("--from",), "SPEC", "the package that provides COMMAND (tool mode): a requirement, "
        "NAME@VERSION, NAME@latest, a URL or a path", R, "runx", kind="text", dest="from_"),
    Opt(("-c", "--constraints"), "FILE", "constrain versions with a requirements file",
        R, "layer", kind="file", repeat=True),
    Opt(("--overrides",), "FILE", "override versions with a requirements file",
        R, "layer", kind="file", repeat=True),
    Opt(("-b", "--build-constraints"), "FILE",
        "constrain build dependencies with a requirements file", R, "layer", kind="file",
        repeat=True),
    # --- what to run
    Opt(("-m", "--module"), "MODULE", "run MODULE as 'python -m MODULE'; what follows are its "
        "arguments", RUN, "runx", kind="text", dest="module", action=_module),
    Opt(("--no-project",), None, "COMMAND names no package (no tool mode): it runs on the "
        "bare interpreter, found on PATH, as with uv run --no-project", RUN, "runx"),
    Opt(("--directory",), "DIR", "change to DIR before anything else (relative paths, the "
        "command's cwd)", RUN, "runx", kind="dir"),
    Opt(("--env-file",), "FILE", "add the variables of a dotenv file to the command's "
        "environment (repeatable; later files win)", RUN, "runx", kind="file", repeat=True,
        dest="env_files"),
    Opt(("--no-env-file",), None, "read no env file, not even UV_ENV_FILE's (also "
        "UV_NO_ENV_FILE)", RUN, "runx"),
    Opt(("-s", "--script"), None, "run the first positional as a PEP 723 script, whatever its "
        "name (uv run --script)", RUN, "runx", dest="as_script"),
    Opt(("--gui-script",), None, "the same as --script (uv runs pythonw for it on Windows "
        "only)", RUN, "runx", dest="as_script"),
    Opt(("--locked",), None, "a script's SCRIPT.lock must be up to date with its block, or "
        "stop (uv's --locked)", RUN, "runx"),
    Opt(("--frozen",), None, "install a script's SCRIPT.lock as it is, without checking it "
        "against the block (uv's --frozen)", RUN, "runx"),
    Opt(("--keep",), None, "do not remove the environment (prints its path; "
        "'runx gc --kept' removes it later)", RUN, "runx"),
    Opt(("--tree",), "MODE", "dir (default) or fuse: a FUSE mount served by the reaper; "
        "also RUNX_TREE", RUN, "runx", kind="tree", default=_tree_default),
    # --- interpreter
    Opt(("-p", "--python"), "PY", "base interpreter, any request uv accepts: 3.12, '>=3.12', "
        "cpython@3.13, 3.13t, pypy@3.10, a path or a command (default: .python-version, "
        "the script's requires-python, else the Python runx runs on)", PY, "runx",
        kind="python"),
    Opt(("--python-preference",), "PREF", "prefer managed or system Pythons when looking "
        "one up", PY, "python", kind=("only-managed", "managed", "system", "only-system")),
    Opt(("--managed-python",), None, "only uv-managed Pythons", PY, "python"),
    Opt(("--no-managed-python",), None, "no uv-managed Pythons", PY, "python"),
    Opt(("--no-python-downloads",), None, "never download a Python", PY, "python"),
    # --- indexes
    Opt(("--index",), "URL", "an index to use besides the default one (repeatable)",
        I, "layer", kind="text", repeat=True),
    Opt(("--default-index",), "URL", "the default index (instead of PyPI)", I, "layer",
        kind="text"),
    Opt(("-i", "--index-url"), "URL", "package index to use instead of PyPI (old spelling "
        "of --default-index)", I, "runx", kind="text"),
    Opt(("--extra-index-url",), "URL", "additional index (old spelling of --index; "
        "repeatable)", I, "runx", kind="text", repeat=True, dest="extra_index_urls"),
    Opt(("-f", "--find-links"), "PATH", "look for packages in a directory or page "
        "(repeatable)", I, "runx", kind="dir", repeat=True),
    Opt(("--no-index",), None, "use only --find-links", I, "runx"),
    Opt(("--index-strategy",), "STRATEGY", "how to resolve against several indexes", I,
        "layer", kind=("first-index", "unsafe-first-match", "unsafe-best-match")),
    Opt(("--keyring-provider",), "PROVIDER", "use keyring for index credentials", I, "layer",
        kind=("disabled", "subprocess")),
    # --- resolver
    Opt(("--exclude-newer",), "DATE", "only packages uploaded before DATE", RES, "layer",
        kind="text"),
    Opt(("--exclude-newer-package",), "PKG=DATE", "--exclude-newer for one package "
        "(repeatable)", RES, "layer", kind="text", repeat=True),
    Opt(("--prerelease",), "MODE", "when to consider pre-releases", RES, "layer", kind=_PRE),
    Opt(("--prerelease-package",), "PKG=MODE", "--prerelease for one package (repeatable)",
        RES, "layer", kind="text", repeat=True),
    Opt(("--resolution",), "MODE", "highest, lowest or lowest-direct versions", RES, "layer",
        kind=("highest", "lowest", "lowest-direct")),
    Opt(("--fork-strategy",), "MODE", "how to pick versions across Pythons and platforms",
        RES, "layer", kind=("fewest", "requires-python")),
    Opt(("--no-sources",), None, "ignore tool.uv.sources", RES, "layer"),
    Opt(("--no-sources-package",), "PKG", "ignore tool.uv.sources for one package "
        "(repeatable)", RES, "layer", kind="text", repeat=True),
    Opt(("--torch-backend",), "BACKEND", "PyTorch backend (cpu, cu126, auto...)", RES, "layer",
        kind="text"),
    Opt(("-U", "--upgrade"), None, "re-resolve and rebuild the cached layer now, allowing "
        "upgrades", RES, "uv", refresh=True),
    Opt(("-P", "--upgrade-package"), "PKG", "rebuild now, allowing upgrades of PKG "
        "(repeatable)", RES, "uv", kind="text", repeat=True, refresh=True),
    Opt(("--refresh",), None, "re-resolve and rebuild the cached layer now", RES, "runx"),
    Opt(("--refresh-package",), "PKG", "rebuild now, refreshing uv's cached data for PKG "
        "(repeatable)", RES, "uv", kind="text", repeat=True, refresh=True),
    # --- installer and build
    Opt(("--reinstall",), None, "rebuild the cached layer now, reinstalling every package",
        INS, "uv", refresh=True),
    Opt(("--reinstall-package",), "PKG", "rebuild now, reinstalling PKG (repeatable)", INS,
        "uv", kind="text", repeat=True, refresh=True),
    Opt(("--link-mode",), "MODE", "how uv puts files into the layer", INS, "layer",
        kind=("clone", "copy", "hardlink", "symlink")),
    Opt(("--compile-bytecode",), None, "compile to bytecode while installing (runx otherwise "
        "compiles a new layer in the background)", INS, "uv"),
    Opt(("-C", "--config-setting"), "KEY=VALUE", "PEP 517 build backend setting "
        "(repeatable)", BLD, "layer", kind="text", repeat=True),
    Opt(("--config-settings-package",), "PKG:KEY=VALUE", "build backend setting for one "
        "package (repeatable)", BLD, "layer", kind="text", repeat=True),
    Opt(("--no-build-isolation",), None, "build source distributions without isolation", BLD,
        "layer"),
    Opt(("--no-build-isolation-package",), "PKG", "--no-build-isolation for one package "
        "(repeatable)", BLD, "layer", kind="text", repeat=True),
    Opt(("--no-build",), None, "never build source distributions", BLD, "layer"),
    Opt(("--no-build-package",), "PKG", "never build PKG from source (repeatable)", BLD,
        "layer", kind="text", repeat=True, uv=["--only-binary", "{}"]),
    Opt(("--no-binary",), None, "never install pre-built wheels", BLD, "layer",
        uv=["--no-binary", ":all:"]),
    Opt(("--no-binary-package",), "PKG", "never install a pre-built wheel of PKG "
        "(repeatable)", BLD, "layer", kind="text", repeat=True, uv=["--no-binary", "{}"]),
    Opt(("--require-build-hashes",), None, "require hashes for all build dependencies", BLD,
        "layer"),
    # --- caching, network, output
    Opt(("--offline",), None, "never touch the network: use cached layers even if stale, and "
        "uv's cache for new ones", OUT, "runx"),
    Opt(("-n", "--no-cache"), None, "install into the run's own tree; nothing persists", OUT,
        "runx"),
    Opt(("--cache-dir",), "DIR", "uv's cache directory (runx's is RUNX_CACHE_DIR)", OUT, "uv",
        kind="dir"),
    Opt(("--no-config",), None, "read no uv.toml or pyproject.toml settings", OUT, "layer"),
    Opt(("--config-file",), "FILE", "read uv settings from this uv.toml", OUT, "layer",
        kind="file"),
    Opt(("--allow-insecure-host",), "HOST", "allow insecure connections to HOST "
        "(repeatable)", OUT, "uv", kind="text", repeat=True),
    Opt(("--native-tls",), None, "the older name of --system-certs (uv hides it)", OUT, "uv"),
    Opt(("--system-certs",), None, "load TLS certificates from the platform's native store "
        "instead of uv's bundled ones (UV_SYSTEM_CERTS)", OUT, "uv"),
    Opt(("--color",), "WHEN", "colour in uv's output", OUT, "uv",
        kind=("auto", "always", "never")),
    Opt(("--no-progress",), None, "no progress bars from uv", OUT, "uv"),
    Opt(("-q", "--quiet"), None, "say nothing but errors (no uv progress, no build summary)",
        OUT, "runx", dest="verbosity", action=_quiet),
    Opt(("-v", "--verbose"), None, "explain each step: interpreter, layer hit or miss, tree, "
        "reaper (-vv: uv's detail too)", OUT, "runx", dest="verbosity", action=_verbose),
    Opt(("--completion",), "SHELL", "print a completion script for bash, zsh or fish", OUT,
        "runx", kind="shell", action=_show),
    Opt(("-V", "--version"), None, "print runx's version and the uv it drives", OUT, "runx",
        action=_show),
    Opt(("-h", "--help"), None, "this help", OUT, "runx", action=_show),
]


class Options:
    """What the command line asked for: one attribute per option of the
    table (its ``dest``, at its default), plus what parse derives."""

    def __init__(self):
        for opt in OPTIONS:
            if opt.to != "runx" or opt.dest == "verbosity":
                continue
            if opt.repeat:
                setattr(self, opt.dest, [])
            elif callable(opt.default):
                setattr(self, opt.dest, opt.default())
            elif opt.default is not None or opt.metavar is not None:
                setattr(self, opt.dest, opt.default)
            else:
                setattr(self, opt.dest, False)
        self.verbosity = 0                # -q: -1; -v, -vv: 1, 2
        self.layer_args: list = []        # (opt, value) of the "layer" options, as typed
        self.uv_options: list = []        # to uv pip install; part of the layer's identity
        self.uv_run_args: list = []       # to uv pip install; not part of the identity
        self.uv_python_args: list = []    # to interpreter lookup (uv python find)
        self.tool: list = []              # tool mode / --from: the command's package
        self.script = None                # SCRIPT, as given (the command is python SCRIPT ...)
        self.command: list = []
        self.py_command = None            # a *.py name that is no file: a command of the env?
        self.show = None                  # (what, value): --help, --version, --completion
        self.prepare = None               # runx sync: called with the layer instead of a run

    if TYPE_CHECKING:       # the table's runx options are attributes too (see __init__)
        def __getattr__(self, name: str) -> Any: ...

        def __setattr__(self, name: str, value: Any) -> None: ...


_BY_NAME: dict = {}


def by_name() -> dict:
    """{every spelling of every option: its Opt}."""
    if not _BY_NAME:
        _BY_NAME.update((n, opt) for opt in OPTIONS for n in opt.names)
    return _BY_NAME


def parse(argv: list) -> Options:
    """runx's own options up to the first positional (or ``--``), then what
    the positionals mean. Everything from COMMAND on is the payload's,
    untouched, even arguments that look like runx options."""
    o = Options()
    table = by_name()
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
        elif len(arg) > 2 and arg[1] in "qv" and arg[1:] == arg[1] * (len(arg) - 1):
            name, eq, value = arg[:2], "", ""            # -vv, -qq: the flag n times, as uv
            for _ in range(len(arg) - 2):
                table[name].action(o, table[name], None)
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
        i += 1
        if opt.action(o, opt, value) is STOP:
            break
    if o.show:
        return o
    _absolute(o)
    _positionals(o, argv[i:])
    _check(o)
    return o


def _absolute(o: Options) -> None:
    """As uv's --directory: before anything else, so every relative path
    (files, the script, the command's cwd) is relative to it."""
    if o.directory is not None:
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
    for opt, value in o.layer_args:
        o.uv_options += opt.uv_spelling(os.path.abspath(value) if opt.kind == "file" else value)


def _positionals(o: Options, rest: list) -> None:
    """The command: ``-m MODULE``, ``-`` (a script on stdin), a SCRIPT, or a
    COMMAND, which in tool mode also names its package."""
    if o.module is not None:
        o.command = ["python", "-m", o.module, *rest]
    elif o.as_script and rest and rest[0] != "-":
        # uv run --script FILE: a PEP 723 script whatever its name (a.txt, a tool
        # without a suffix); a missing one is an error here, as in uv (exit 2).
        if not os.path.isfile(rest[0]):
            raise UsageError(f"script {rest[0]}: no such file", "check the path")
        o.script = rest[0]
        o.command = ["python", rest[0], *rest[1:]]
    elif o.as_script and not rest:
        raise UsageError("--script needs the script's path", "e.g. runx --script tool.txt ARG")
    elif rest and rest[0] == "-":
        # `runx - < script.py`, as `uv run -`: the script's text becomes
        # `python -c TEXT ARG...` once read (cli._stdin_script), so
        # sys.argv[0] is "-c" and the working directory is on sys.path, as with uv.
        o.script = "-"
        o.command = ["python", "-c", "", *rest[1:]]
    elif rest:
        first = rest[0]
        if is_script(first):
            o.script = first
            o.command = ["python", first, *rest[1:]]
        elif first.endswith(".py"):
            from . import pep723

            if pep723.missing_script(first):
                if "/" in first:
                    raise UsageError(f"script {first}: no such file", "check the path")
                # Not a file, but maybe a console script of the environment
                # (jp.py, rst2html.py), as uv takes it: decided once the
                # layer exists (cli.run).
                o.py_command = first
        if not o.command:
            o.command = rest
    if o.from_ is not None:
        _tool(o, o.from_, "--from")
    elif (o.command and not o.script and o.module is None and not o.no_project and not o.with_
          and o.py_command is None    # a *.py name is a script (uv run's reading), not a package
          and not o.with_requirements and not o.with_editable and o.command[0] != "python"
          and _names_a_package(o.command[0])):
        # Tool mode, as uvx: with no requirement named at all, the command
        # names its own package (even if a command of that name is on PATH).
        # Not "-" (a script on stdin) and not a path (a file to run).
        _tool(o, o.command[0], "command")


def _tool(o: Options, spec: str, what: str) -> None:
    """uvx's reading of the package named by COMMAND or --from: a Python
    (``python@3.12``, ``pypy310``, ``'python>3.11,<3.13'``: an interpreter
    request and no package, as uvx's ToolRequest::Python) or a package."""
    if o.locked or o.frozen:
        flag = "--locked" if o.locked else "--frozen"
        raise UsageError(f"{flag}: uvx does not take it, and runx neither in tool mode",
                         "a lock belongs to a script: runx --locked SCRIPT")
    request = python_tool_request(spec)
    if request is not None:
        if request and o.python is not None and o.python != request:
            raise UsageError(f"two Python requests: --python {o.python} and {spec}",
                             "give one (uvx refuses both too)")
        o.python = request or o.python
        if what == "command":
            o.command = ["python", *o.command[1:]]
        return
    req, cmd, latest = tool_requirement(spec, what)
    o.tool = [req]
    if what == "command":
        o.command = [cmd or o.command[0], *o.command[1:]]
    o.refresh = o.refresh or latest


def _names_a_package(first: str) -> bool:
    """A tool-mode COMMAND names a package: a name, with extras or a version
    (``ruff``, ``black[jupyter]``, ``ruff@0.6``, ``ruff>=0.6``) or a direct
    reference (``'cowsay @ https://…/cowsay.whl'``); not a path."""
    if not first[:1].isalnum():
        return False
    name, at, target = first.partition("@")
    return "/" not in name and (not at or "/" not in target or "://" in target)


_PYTHONS = ("python", "cpython", "pypy", "graalpy", "pyodide")


def python_tool_request(spec: str):
    """uv's PythonRequest::try_from_tool_name: "" for ``python`` (the default
    interpreter), the request for ``python3.12``, ``python@3.12``,
    ``pypy@3.10``, ``cpython``, ``python>3.11,<3.13``; None for a package."""
    name = spec.lower()
    for prefix in _PYTHONS:
        if name == prefix:
            return "" if prefix == "python" else prefix
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix):]
        if rest.startswith("@"):
            version = rest[1:]
            if version == "latest":
                raise UsageError(f"{spec}: requesting the 'latest' Python version is not yet "
                                 "supported (uv's words)", f"name a version, e.g. {prefix}@3.13")
            if not version:
                raise UsageError(f"{spec}: no version after '@'", f"e.g. {prefix}@3.13")
        elif _is_version_request(rest):
            version = rest
        else:
            continue
        return version if prefix == "python" else f"{prefix}@{version}"
    return None


def _is_version_request(v: str) -> bool:
    """What uv's VersionRequest takes after a bare prefix (python312, python3.13t,
    pypy3.10, python>=3.11): digits and dots, a 't', or a specifier."""
    if v[:1] in ("<", ">", "=", "!", "~"):
        return True
    core = v[:-1] if v.endswith("t") else v
    parts = core.split(".")
    return bool(core) and len(parts) <= 3 and all(p.isdigit() for p in parts)


def _check(o: Options) -> None:
    if o.tree not in ("dir", "fuse"):
        raise UsageError(f"--tree {o.tree}: expected 'dir' or 'fuse'")
    if o.keep and o.tree == "fuse":
        raise UsageError("--keep needs --tree dir",
                         "a FUSE tree lives in its reaper's memory and goes with it")
    if not o.command and (o.no_cache or not (o.with_ or o.with_requirements or o.with_editable)):
        raise UsageError("no command given", "try: runx --with cowsay cowsay -t hi")
    # With requirements and no command, cli.run says which commands the
    # environment has, as uv does, once it is built.


def _unknown(arg: str, name: str, table: dict):
    if name in NOT_TAKEN:
        return UsageError(f"{name}: {NOT_TAKEN[name]}", None)
    import difflib      # the error path only

    close = difflib.get_close_matches(name, list(table), n=1, cutoff=0.75)
    if close:
        return UsageError(f"unknown option {arg}", f"did you mean {close[0]}?")
    return UsageError(f"unknown option {arg}",
                      "see 'runx --help'; put '--' before a command that starts with '-'")


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
    if rest.lstrip().startswith("@") and "://" in rest:
        rest = rest.lstrip()                # 'cowsay @ https://…', spaces as PEP 508 allows
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

# uv options runx does not take, with the reason (the error says it in one line).
_PROJECT = "runx never reads a project: name what to install with --with or --from"
NOT_TAKEN = {
    "--isolated": "runx environments are always isolated (a fresh tree over a cached layer)",
    "--project": _PROJECT,
    "--package": _PROJECT,
    "--all-packages": _PROJECT,
    "--no-sync": _PROJECT,
    "--active": "runx always makes its own environment (a tree over a cached layer)",
    "--extra": "extras go into the requirement: --with 'pkg[extra]'",
    "--all-extras": "extras go into the requirement: --with 'pkg[extra]'",
    "--no-extra": _PROJECT,
    "--no-dev": _PROJECT,
    "--only-dev": _PROJECT,
    "--group": _PROJECT,
    "--no-group": _PROJECT,
    "--no-default-groups": _PROJECT,
    "--only-group": _PROJECT,
    "--all-groups": _PROJECT,
    "--upgrade-group": _PROJECT,
    "--no-editable": _PROJECT,
    "--no-editable-package": _PROJECT,
    "--exact": "a runx environment holds exactly what was asked for already",
    "--lfs": "uv pip install has no Git LFS support; use a URL with the files committed",
    "--python-platform": "an environment for another platform could not run the command",
    "--no-require-build-hashes": "that is the default",
}

README_BEGIN = ("<!-- options: generated from src/runner/options.py by "
                "scripts/readme-options; do not edit -->")
README_END = "<!-- /options -->"


def readme_table() -> str:
    """The README's option list (between README_BEGIN and README_END)."""
    where = {"layer": "uv; part of the layer's name", "uv": "uv", "python": "interpreter lookup",
             "runx": "runx"}
    rows = [README_BEGIN, "", "| option | meaning | goes to |", "|---|---|---|"]
    category = None
    for opt in OPTIONS:
        if opt.category != category:
            category = opt.category
            rows.append(f"| **{category}** | | |")
        names = ", ".join(f"`{n}`" for n in opt.names)
        if opt.metavar:
            names = names[:-1] + f" {opt.metavar}`"
        meaning = opt.help.replace("|", "\\|")
        rows.append(f"| {names} | {meaning} | {where[opt.to]} |")
    rows += ["", "Not taken, each with this one-line error: "
             + "; ".join(f"`{n}`" for n in NOT_TAKEN) + ".", "", README_END]
    return "\n".join(rows)
