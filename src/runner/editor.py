"""``runx editor``: a stable interpreter path for an editor to point at.

``runx editor [OPTIONS] SCRIPT | --with REQ ...`` prepares what that command
line would run (as ``runx sync``) and prints the path of an interpreter
that imports it: ``<cache>/editors/<name>/bin/python``. That path stays the
same for the same script (or requirement set) and options; its contents
follow the layer:

- ``<cache>/editors/<name>`` is a symlink to a venv beside it
  (``.<name>.<id>``), swapped with ``rename(2)`` when it is rewritten, so
  an editor never sees half of one;
- the venv is a thin one like a run's tree (venv.entries), over the key's
  ``current`` build rather than a build: a freshness rebuild of the same
  requirements shows through with no rewrite;
- when the script's block (or anything else in the key) changes, the next
  ``runx editor`` with the same command line, or the next run of the
  script that builds the new layer (cli._layer calls ``follow``, on the
  cold path only), rewrites it over the new key.

Removed by ``runx editor --remove`` with the same command line, and by the
cache's expiry (reaper/expiry.py) once its layer is gone: it lives as long
as runs (or ``runx editor``) keep the layer in use. ``runx ls`` lists them.
Its name is derived from what decides the environment (``identity``), so
both ``runx editor app.py`` and ``runx app.py`` find the same one.
"""

import json
import os

from ..errors import RunxError, UsageError, say

EDITOR_HELP = """\
usage: runx editor [OPTIONS] SCRIPT
       runx editor [OPTIONS] --with REQ [--with REQ...]
       runx editor --remove [OPTIONS] SCRIPT | --with REQ...   (the same OPTIONS)

Prepare the environment that command line would run (as 'runx sync') and
print the path of an interpreter that imports it, for an editor (VS Code:
'Python: Select Interpreter', PyCharm: 'Add Interpreter, Existing'). The
path stays the same for the same SCRIPT or requirements; when the script's
'# /// script' block changes, the next 'runx editor SCRIPT' or 'runx
SCRIPT' updates what it holds. 'runx ls' lists these interpreters; --remove
removes one; the cache's expiry removes one whose environment expired.
"""

META = "runx-editor.json"


def command(argv: list):
    """The Options of ``runx editor ARGS``, marked to write the editor's venv
    once the layer is ready (cli.run calls ``made``); --remove exits here."""
    from . import prepare

    nothing = UsageError("runx editor: no script or requirements named",
                         "e.g. runx editor app.py, or runx editor --with pandas")
    if argv and argv[0] in ("-h", "--help"):
        print(EDITOR_HELP, end="")
        raise SystemExit(0)
    remove, args = prepare.take_flag(argv, "--remove")
    o = prepare.parse_command(args, EDITOR_HELP, nothing)
    if o.show:
        return o
    prepare.refuse(o, "runx editor")
    if remove:
        raise SystemExit(_remove(o))
    o.prepare = made
    return o


def identity(o) -> str:
    """What decides the environment, from the parsed command line: the
    script (by absolute path) or the requirements, and the options that
    change what is installed or on which interpreter. The same for
    ``runx editor app.py`` and ``runx app.py``."""
    import hashlib

    parts = [os.path.abspath(o.script) if o.script and o.script != "-" else None,
             sorted(o.with_), o.with_requirements, o.with_editable, o.tool, o.python,
             o.uv_options, o.uv_python_args, o.index_url, o.extra_index_urls, o.find_links,
             o.no_index]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def name(o) -> str:
    if o.script and o.script != "-":
        base = os.path.splitext(os.path.basename(o.script))[0]
    else:
        reqs = o.tool or o.with_
        base = reqs[0] if reqs else "python"
    stem = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "-"
                   for c in base.lower()).strip("-.")[:40] or "env"
    return f"{stem}-{identity(o)}"


def editors_dir(cache: str) -> str:
    from ..reaper import store

    return os.path.join(cache, store.EDITORS)


def interpreter_path(cache: str, n: str) -> str:
    return os.path.join(editors_dir(cache), n, "bin", "python")


def made(o, spec, interp, layer, cache: str, log) -> int:
    """cli.run's end for ``runx editor``: the layer finished, the editor's
    venv written over it, its interpreter's path printed."""
    from . import prepare

    if layer is not None:
        prepare.ready(layer, cache, log)
    n = name(o)
    write(cache, n, interp, layer, describe(o))
    print(interpreter_path(cache, n))
    if o.verbosity > 0:
        log(f"editor interpreter {n}: over {layer.path if layer else 'no packages'}")
    return 0


def describe(o) -> str:
    if o.script and o.script != "-":
        return os.path.abspath(o.script)
    return " ".join(f"--with {w}" for w in o.tool + o.with_) or "no packages"


def follow(o, interp, layer, cache: str, log) -> None:
    """A run built a new layer: an editor made for the same command line
    (same ``name``) is rewritten over it. One lstat when there is none."""
    if o.prepare is made:        # runx editor itself: made() writes it
        return
    n = name(o)
    link = os.path.join(editors_dir(cache), n)
    if not os.path.islink(link):
        return
    try:
        with open(os.path.join(link, META)) as f:
            if json.load(f).get("key") == layer.key:
                return
    except (OSError, ValueError):
        pass
    try:
        write(cache, n, interp, layer, describe(o))
        log(f"editor interpreter {n} now over {layer.path}")
    except RunxError as e:
        say(f"runx: warning: {e.message}\n")


def write(cache: str, n: str, interp, layer, what: str) -> None:
    """The editor venv ``n``: written aside, then swapped in for the old one
    (a symlink renamed over), the old one removed."""
    from ..reaper import store
    from ..reaper.removal import remove_tree
    from . import paths, venv

    d = editors_dir(cache)
    try:
        paths.private_dir(d)
        build = f".{n}.{os.urandom(4).hex()}"
        root = os.path.join(d, build)
        os.mkdir(root, 0o755)
        try:
            over = None
            if layer is not None:
                # Over the key's `current`, not the build: a rebuild of the
                # same key shows through.
                current = os.path.join(store.layers_dir(cache), layer.key, store.CURRENT)
                site = os.path.join(current, os.path.relpath(layer.site_packages, layer.path))
                over = store.Layer(layer.key, current, site, layer.scripts, layer.created,
                                   layer.pinned, True, layer.prefix, None, layer.pth)
            venv.write_entries(root, venv.entries(root, interp, over, role="editor"))
            with open(os.path.join(root, META), "w") as f:
                json.dump({"for": what, "key": layer.key if layer else None,
                           "python": interp.executable}, f)
            link = os.path.join(d, n)
            old = os.readlink(link) if os.path.islink(link) else None
            tmp = os.path.join(d, f".{n}.link-{os.urandom(4).hex()}")
            os.symlink(build, tmp)
            os.replace(tmp, link)
        except BaseException:
            remove_tree(d, build)
            raise
        if old and old.startswith(".") and "/" not in old:
            remove_tree(d, old)
    except OSError as e:
        raise RunxError(f"cannot write the editor interpreter in {d}: {e.strerror or e}",
                        f"check free space and permissions under {cache}")


def _remove(o) -> int:
    from . import paths
    from ..reaper import ownership

    cache = paths.cache_dir()
    ownership.trusted(cache)
    n = name(o)
    if not remove(cache, n):
        raise RunxError(f"no editor interpreter for {describe(o)}",
                        "runx ls lists them, with the command line each was made for")
    print(f"removed {interpreter_path(cache, n)}")
    return 0


def remove(cache: str, n: str) -> bool:
    """Remove the editor venv ``n`` (its link, then what it named)."""
    from ..reaper.removal import remove_tree

    d = editors_dir(cache)
    link = os.path.join(d, n)
    if not os.path.islink(link):
        return False
    target = os.readlink(link)
    os.unlink(link)
    if target.startswith(".") and "/" not in target:
        remove_tree(d, target)
    return True


def listing(cache: str) -> list:
    """[(interpreter path, what it is for, state)] of the editor venvs."""
    from ..reaper import store

    d = editors_dir(cache)
    out: list = []
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return out
    for n in names:
        link = os.path.join(d, n)
        if n.startswith(".") or not os.path.islink(link):
            continue
        try:
            with open(os.path.join(link, META)) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            continue
        key = meta.get("key")
        ok = key is None or os.path.exists(os.path.join(store.layers_dir(cache), key,
                                                        store.CURRENT))
        out.append((interpreter_path(cache, n), meta.get("for", "?"),
                    "ready" if ok else "layer gone"))
    return out
