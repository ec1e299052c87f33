"""runx --help: the usage, the prose around the option table, and the
table itself (runx_env.runner.options) laid out. Loaded only for --help.
"""

USAGE = """\
usage: runx [OPTIONS] [--] COMMAND [ARG...]
       runx [OPTIONS] SCRIPT [ARG...] | -m MODULE [ARG...] | - [ARG...] < SCRIPT
       runx sync | editor [--remove] [OPTIONS] SCRIPT | TOOL | --with REQ
       runx kernel install [--user|--prefix DIR] [--name N] [OPTIONS] [SCRIPT]
       runx kernel list | kernel remove NAME... | gc | ls | cache dir|prune|clean
       (the commands: see "Commands" below)"""


SUMMARY = "Run a command in a throwaway Python environment that removes itself afterwards"

_HELP_HEAD = """

runx replaces itself with COMMAND (same PID, same parent, signals and exit
status as if started directly); a detached reaper removes the environment
when the command, and anything it left running, is done.

  runx --with cowsay cowsay -t hello
  runx --with requests,rich python fetch.py
  runx --with-requirements requirements.txt python app.py
  runx script.py ARG...      (its '# /// script' block, PEP 723, says what to install)
  runx --with httpie -m httpie --version
  runx ruff check .          (tool mode, as uvx: the command names its package)
  runx ruff@0.6.0 --version; runx --from httpie http --version
  runx - ARG... < script.py  (a script on stdin: 'python -c SCRIPT ARG...')

SCRIPT is an existing file named *.py, or any file whose first line is a #!
line that mentions runx: '#!/usr/bin/env -S runx' makes a script runnable
on its own. It runs as 'python SCRIPT ARG...' on the environment's python,
with the 'dependencies' of its PEP 723 block (plus --with) installed, and
its [tool.uv] settings applied as 'uv run' applies them. A *.py name
that is no file but a command of the environment (jp.py) runs as that
command. With no command, the error lists the environment's commands.

The interpreter, as uv chooses it: --python (or UV_PYTHON); else the
nearest .python-version (next to the script, or up from the current
directory); else the script's 'requires-python'; else the Python runx
runs on.

Tool mode, as uvx: when no requirement is named (no --with,
--with-requirements, --from or script), a COMMAND other than python/pythonX.Y
and not a path names its package, which is installed even if a command of that
name is on PATH: 'runx ruff', 'runx black[jupyter]', 'runx ruff@0.6.0'
(ruff==0.6.0), 'runx ruff@latest' (re-resolved now), 'runx "ruff>=0.6"'.
--from SPEC names the package of another command; --with then adds packages.
With --with alone runx is 'uv run --with': the command is looked up in the
environment, then on PATH; --no-project runs it with no packages at all.

uv's resolver, index, build and installer options keep uv's spelling and
meaning; those that change what is installed are part of the cached layer's
name. -U/--upgrade, --reinstall and their -package forms rebuild the layer now.

"""

_HELP_TAIL = """Commands:
  runx sync [OPTIONS] SCRIPT|TOOL|--with REQ [COMMAND...]
                        prepare the environment that command line would run,
                        and run nothing: the layer built, byte-compiled and
                        read-only when it returns (Docker builds, CI caches)
  runx kernel install [--user | --sys-prefix | --prefix DIR] [--name NAME]
        [--display-name TEXT] [--env NAME VALUE]... [OPTIONS] [SCRIPT]
                        install a Jupyter kernel that starts through runx
                        with what OPTIONS and SCRIPT name (ipykernel added),
                        its environment prepared now
  runx kernel list | remove NAME...
                        the kernels runx installed; remove one
  runx editor [--remove] [OPTIONS] SCRIPT|--with REQ
                        print a stable interpreter path for an editor, over
                        that command line's environment (prepared now); it
                        follows the script's block; --remove removes it
  runx gc [--dry-run] [--kept]
                        remove environments left by runs that were killed
                        (--kept: also those kept with --keep); exits 1 if
                        one could not be removed ('kept PATH: why')
  runx ls               list live environments and editors' interpreters
  runx cache dir|prune|clean
                        show, prune or empty the layer cache

The command sees VIRTUAL_ENV and RUNX_ENV set to the environment, and PATH
with the environment's bin first (plus any --env-file variables); nothing
else of its process changes. The environment is a complete venv: what the
packages put under its prefix (share/, etc/, include/) is there, and so is
bin/activate; what the command writes there stays in it and goes with it.
On a terminal a cold build shows uv's progress; elsewhere it prints one line,
'runx: installed N packages in T s' (not with -q).

Exit status: the command's own once it runs. Before that, runx exits with
  1    the environment could not be built (uv's explanation is shown above),
       no interpreter matches --python, .python-version or the script's
       requires-python (and uv may not download one); the cache or runtime
       directory is not yours, is writable by others, or is read-only; a
       process or open-file limit (ulimit -u, -n) was reached
  2    usage: unknown option (did you mean...), a uv option runx does not
       take (the error says why), missing value, no command, missing script,
       a script on stdin too long for python -c or with a NUL byte,
       malformed '# /// script' block or [tool.uv] key runx cannot honour,
       unreadable requirements or env file
       (or one that is not a regular file, or larger than 16 MiB)
  126  the command is not executable
  127  the command was not found
Each error is one line: 'runx: error: WHAT (HINT)'.

Environment: RUNX_CACHE_DIR (layers; default $CACHE_DIRECTORY/runx under
systemd, else $XDG_CACHE_HOME/runx or ~/.cache/runx), RUNX_RUNTIME_DIR (live
trees; default $RUNTIME_DIRECTORY/runx under systemd, else $XDG_RUNTIME_DIR/runx
if it is yours, else RUNX_CACHE_DIR/runs), RUNX_FRESHNESS (seconds before
unpinned requirements are re-resolved; 86400; if the index cannot be reached
then, the older environment runs), RUNX_TREE, RUNX_DEBUG=1 (a traceback
instead of 'internal error').
"""


def help_text() -> str:
    """--help, generated from the option table (runx_env.runner.options)."""
    from .options import OPTIONS

    # As uv's: what it is, the usage, then the options; the prose after them.
    out = [SUMMARY, "", USAGE, ""]
    category = None
    for opt in OPTIONS:
        if opt.category != category:
            category = opt.category
            out.append(f"{category} options:")
        names = ", ".join(opt.names) + (f" {opt.metavar}" if opt.metavar else "")
        words = opt.help.split()
        lines, line = [], ""
        for w in words:
            if line and len(line) + 1 + len(w) > 54:
                lines.append(line)
                line = w
            else:
                line = f"{line} {w}" if line else w
        lines.append(line)
        if len(names) > 21:
            out.append(f"  {names}")
            out += [f"{'':24}{ln}" for ln in lines]
        else:
            out.append(f"  {names:22}{lines[0]}")
            out += [f"{'':24}{ln}" for ln in lines[1:]]
    out.append("")
    return "\n".join(out) + "\n" + _HELP_HEAD.strip("\n") + "\n\n" + _HELP_TAIL
