"""The one table of runx's options: it drives the parser (cli.parse), --help,
shell completion (completion.py) and the README's option list
(scripts/gen-readme-options writes it into a marked block).

Each option says where its value goes:

    runx     handled by cli.parse itself (an attribute of Options)
    layer    passed to ``uv pip install`` and part of the layer's identity
             (Spec.uv_options): it changes what the layer contains
    uv       passed to uv, not part of the identity: it changes how uv talks
             or shows progress, or (``refresh``) asks for a rebuild now
    python   interpreter lookup (Options.uv_python_args)

uv's spelling is kept wherever runx takes an option at all, so a ``uvx`` or
``uv run --with`` command line works unchanged. A uv option runx does not
take is in NOT_TAKEN with the reason, and gets that reason as its error.

Plain data: cli imports it on every run to parse.
"""


class Opt:
    __slots__ = ("names", "metavar", "help", "category", "to", "kind", "repeat", "uv",
                 "refresh", "dest")

    def __init__(self, names, metavar, help, category, to, *, kind=None, repeat=False,
                 uv=None, refresh=False, dest=None):
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

    @property
    def name(self) -> str:
        return self.names[-1]


R, I, RES, INS, BLD, PY, RUN, OUT = ("Requirements", "Index", "Resolver", "Installer",
                                     "Build", "Python", "Run", "Output and network")
_PRE = ("disallow", "allow", "if-necessary", "explicit", "if-necessary-or-explicit")

OPTIONS = [
    # --- what to install
    Opt(("-w", "--with"), "REQ", "install REQ (repeatable; commas separate several)",
        R, "runx", kind="text", repeat=True),
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
        "arguments", RUN, "runx", kind="text", dest="module"),
    Opt(("--no-project",), None, "COMMAND names no package (no tool mode): it runs on the "
        "bare interpreter, found on PATH, as with uv run --no-project", RUN, "runx"),
    Opt(("--directory",), "DIR", "change to DIR before anything else (relative paths, the "
        "command's cwd)", RUN, "runx", kind="dir"),
    Opt(("--env-file",), "FILE", "add the variables of a dotenv file to the command's "
        "environment (repeatable; later files win)", RUN, "runx", kind="file", repeat=True,
        dest="env_files"),
    Opt(("--keep",), None, "do not remove the environment (prints its path; "
        "'runx gc --kept' removes it later)", RUN, "runx"),
    Opt(("--tree",), "MODE", "dir (default) or fuse: a FUSE mount served by the reaper; "
        "also RUNX_TREE", RUN, "runx", kind="tree"),
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
    Opt(("--native-tls",), None, "use the platform's certificate store", OUT, "uv"),
    Opt(("--system-certs",), None, "use the platform's certificate store", OUT, "uv"),
    Opt(("--color",), "WHEN", "colour in uv's output", OUT, "uv",
        kind=("auto", "always", "never")),
    Opt(("--no-progress",), None, "no progress bars from uv", OUT, "uv"),
    Opt(("-q", "--quiet"), None, "say nothing but errors (no uv progress, no build summary)",
        OUT, "runx"),
    Opt(("-v", "--verbose"), None, "explain each step: interpreter, layer hit or miss, tree, "
        "reaper (-vv: uv's detail too)", OUT, "runx"),
    Opt(("--completion",), "SHELL", "print a completion script for bash, zsh or fish", OUT,
        "runx", kind="shell"),
    Opt(("-V", "--version"), None, "print runx's version", OUT, "runx"),
    Opt(("-h", "--help"), None, "this help", OUT, "runx"),
]

# uv options runx does not take, with the reason (the error says it in one line).
_PROJECT = "runx never reads a project: name what to install with --with or --from"
NOT_TAKEN = {
    "--isolated": "runx environments are always isolated (a fresh tree over a cached layer)",
    "--project": _PROJECT,
    "--package": _PROJECT,
    "--all-packages": _PROJECT,
    "--locked": _PROJECT,
    "--frozen": _PROJECT,
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
    "-s": "a *.py file is a script already: write runx SCRIPT",
    "--script": "a *.py file is a script already: write runx SCRIPT",
    "--gui-script": "GUI scripts are a Windows feature; write runx SCRIPT",
    "--no-env-file": "runx reads no env file unless given --env-file",
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
