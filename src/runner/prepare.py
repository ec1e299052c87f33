"""``runx sync``: prepare what a run would use, and run nothing.

``runx sync [OPTIONS] SCRIPT | TOOL | --with ...`` takes the command line of
a run (``runx sync --with cowsay cowsay``, ``runx sync app.py``, ``runx sync
ruff``) and stops where the run would make its tree: the interpreter found
(downloaded if uv would), the layer found or built, then byte-compiled and
frozen in this process, so that when the command returns the layer is
finished (a Docker build step or a CI cache save may follow at once). No
tree is made and no reaper is started. The command and its arguments are
read as a run reads them (a SCRIPT's block, tool mode's package) and never
executed.

cli.run does the work (its first half is the same for both); this module
reads the subcommand's own arguments and finishes the layer (``finish``),
which cli.run calls in place of making the tree when ``Options.prepare``
is set.
"""

import os

from ..errors import EXIT_ENV, RunxError, UsageError, say

SYNC_HELP = """\
usage: runx sync [OPTIONS] SCRIPT [ARG...]
       runx sync [OPTIONS] --with REQ [COMMAND [ARG...]]
       runx sync [OPTIONS] TOOL [ARG...]

Prepare the environment the same 'runx ...' command line would run, and run
nothing: the layer is built (or found), byte-compiled and made read-only
before this returns, and no environment of a run is left. The next
'runx ...' with the same options starts warm, offline too (a Docker build
step or a CI cache can be saved right after). OPTIONS are runx's (see
'runx --help'); COMMAND and ARGs are read as a run reads them, never run.
Exit status: 0 when the layer is ready, else runx's (1: it could not be
built or compiled, 2: usage).
"""


def parse_command(argv: list, help_text: str, nothing: UsageError):
    """The Options of a subcommand that takes a run's command line (sync,
    editor): no arguments, or a line that names nothing to install, is
    ``nothing``; -h/--help prints ``help_text`` and exits 0."""
    from .options import parse

    if not argv or argv[0] in ("-h", "--help"):
        if not argv:
            raise nothing
        print(help_text, end="")
        raise SystemExit(0)
    try:
        o = parse(argv)
    except UsageError as e:
        if e.message == "no command given":
            raise nothing from None
        raise
    if o.show and o.show[0] == "help":
        print(help_text, end="")
        raise SystemExit(0)
    return o


def command(argv: list):
    """The Options of ``runx sync ARGS`` (``argv`` without "sync"), marked to
    stop after the layer (cli.run calls ``finish``)."""
    nothing = UsageError("nothing to prepare",
                         "name a script, a tool or --with REQ: runx sync --with cowsay")
    if argv and ("-n" in argv or "--no-cache" in argv):
        nothing = UsageError("sync: --no-cache keeps nothing to prepare",
                             "drop --no-cache: the prepared layer is what later runs use")
    o = parse_command(argv, SYNC_HELP, nothing)
    if o.show:
        return o
    refuse(o, "sync")
    o.prepare = finish
    return o


def refuse(o, what: str) -> None:
    """What preparing cannot honour: an environment that is not cached."""
    if o.no_cache:
        raise UsageError(f"{what}: --no-cache keeps nothing to prepare",
                         "drop --no-cache: the prepared layer is what later runs use")
    if o.keep:
        raise UsageError(f"{what}: --keep keeps a run's environment, and {what} makes none",
                         "drop --keep")


def finish(o, spec, interp, layer, cache: str, log) -> int:
    """Called by cli.run with the layer found or built: compile and freeze
    it now (waiting for a background finisher that is at it), check that it
    is, and say so. 0, or a RunxError."""
    if layer is None:
        if o.verbosity >= 0:
            say("runx: nothing to install: the environment is the bare interpreter\n")
        return 0
    ready(layer, cache, log)
    if o.verbosity >= 0:
        say(f"runx: ready: {len(spec.requirements)} requirement"
            f"{'s' if len(spec.requirements) != 1 else ''}, compiled ({layer.path})\n")
    return 0


def ready(layer, cache: str, log) -> None:
    """Byte-compile and freeze ``layer`` unless it is already (reaper/finish.py,
    here in the foreground, waiting for the key's lock); RunxError if it
    could not be."""
    from ..reaper import store
    from ..reaper.finish import compile_and_freeze

    if not layer.compiled:
        log(f"compiling and freezing {layer.path}")
        compile_and_freeze(layer.path, log, wait=True)
    again = store.lookup(cache, layer.key, allow_stale=True)
    try:
        done = again is not None and again.path == layer.path and again.compiled
    finally:
        if again is not None:
            again.release()
    if not done:
        raise RunxError(f"byte-compiling the environment failed ({layer.path})",
                        "run 'runx sync -v ...' to see why; a later run retries in the "
                        "background", EXIT_ENV)


def take_flag(argv: list, flag: str) -> tuple:
    """(whether ``flag`` is among the runx options of ``argv``, ``argv``
    without it): before the command, values of options skipped."""
    from .options import by_name

    table = by_name()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == flag:
            return True, argv[:i] + argv[i + 1:]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        opt = table.get(arg)
        i += 2 if opt is not None and opt.metavar is not None else 1
    return False, argv


def absolute_argv(argv: list) -> list:
    """``argv`` (runx options, then the command) with every local path made
    absolute: for a command line stored to be run later from elsewhere (a
    kernelspec, which Jupyter starts in the notebook's directory)."""
    from .options import by_name

    table = by_name()
    out = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        opt = table.get(name)
        if opt is None or opt.metavar is None:
            out.append(arg)
            i += 1
            continue
        if not eq:
            if i + 1 >= len(argv):
                out.append(arg)
                i += 1
                continue
            value = argv[i + 1]
            i += 1
        i += 1
        if opt.kind in ("file", "dir") and "://" not in value:
            value = os.path.abspath(os.path.expanduser(value))
        elif name in ("-w", "--with", "--from") and value.startswith(("./", "../", "~/")):
            value = os.path.abspath(os.path.expanduser(value))
        out += [name, value]
    rest = argv[i:]
    if rest and rest[0] != "--" and os.path.exists(rest[0]) and rest[0] != "-":
        rest = [os.path.abspath(rest[0]), *rest[1:]]
    return out + rest

