"""The venv a run sees, described once: pyvenv.cfg, interpreter links, a .pth
that adds the layer, re-headed console scripts, activate scripts, and the
layer's other prefix entries as recorded in its manifest (share/, etc/,
include/...). Made in time that does not depend on the layer's size.

``entries()`` describes it for ``--tree dir`` (written by ``write_entries``),
for ``--tree fuse`` (served by runx_env.reaper.memfs) and for the empty venv a layer
is installed into (runx_env.runner.build).
"""

import os

from ..reaper import watch

TYPE_CHECKING = False     # not typing's: see tests/test_warm_path.py
if TYPE_CHECKING:
    from .interpreter import Interpreter
    from ..reaper.store import Layer


class Entry:
    """One entry of the thin venv: path relative to the tree, kind "dir" |
    "file" | "symlink", file content or link target, mode."""

    __slots__ = ("path", "kind", "data", "mode")

    def __init__(self, path: str, kind: str, data: str = "", mode: int = 0o755):
        self.path = path
        self.kind = kind
        self.data = data
        self.mode = mode

    def __repr__(self):
        return f"Entry({self.path!r}, {self.kind!r})"


def _shebang(python: str) -> str:
    # The kernel reads at most 127 bytes of a shebang line (BINPRM_BUF_SIZE);
    # longer interpreter paths go through /bin/sh, as uv and pip do.
    if len(python) + 2 <= 127 and " " not in python:
        return f"#!{python}\n"
    return f"#!/bin/sh\n'''exec' '{python}' \"$0\" \"$@\"\n' '''\n"


def entries(path: str, interp: "Interpreter", layer: "Layer | None", *,
            role: str = "tree") -> list:
    """The venv at ``path`` on ``interp``: a run's thin tree over ``layer``,
    or (``role="layer"``, no layer) the empty venv a layer is installed into."""
    home = os.path.dirname(interp.executable)
    cfg = (f"home = {home}\ninclude-system-site-packages = false\n"
           f"version = {interp.version}\nimplementation = {interp.implementation}\n")
    if role == "tree":
        cfg += f"runx-tree = {path}\n"
    if layer:
        cfg += f"runx-layer = {layer.path}\n"
    site = interp.lib_dir
    out = [Entry("pyvenv.cfg", "file", cfg, 0o644), Entry("bin", "dir"),
           Entry("bin/python", "symlink", interp.executable),
           Entry("bin/python3", "symlink", "python"),
           Entry(f"bin/python{interp.minor}", "symlink", "python")]
    parts = site.split("/")
    for i in range(1, len(parts) + 1):
        out.append(Entry("/".join(parts[:i]), "dir"))
    if watch.LINUX and site.startswith("lib/"):
        out.append(Entry("lib64", "symlink", "lib"))
    if role == "tree":
        for name, text in activate_scripts(path):
            out.append(Entry(f"bin/{name}", "file", text, 0o644))
    if layer:
        out.append(Entry(f"{site}/_runx_layer.pth", "file", _layer_line(layer), 0o644))
        head = _shebang(os.path.join(path, "bin", "python"))
        for s in layer.scripts:
            target = f"bin/{s['name']}"
            if s["kind"] == "python":
                out.append(Entry(target, "file", head + s["body"], s["mode"] | 0o200))
            else:
                out.append(Entry(target, "symlink",
                                 os.path.join(layer.path, "bin", s["name"])))
        # Everything else the layer's prefix holds (share/, etc/, include/...),
        # as recorded at build time: see build.prefix_entries.
        for kind, rel, data in layer.prefix:
            if kind == "dir":
                out.append(Entry(rel, "dir"))
            elif kind == "copy":
                out.append(Entry(rel, "file", data[0], data[1] | 0o200))
            else:
                out.append(Entry(rel, "symlink", os.path.join(layer.path, rel)))
    return out


def _layer_line(layer: "Layer") -> str:
    """The tree's .pth line that puts the layer on sys.path. A bare path
    when the layer has no .pth files of its own: the payload's site then
    appends it without listing the layer's site-packages (a cost of every
    start: docs/benchmarks.md); otherwise addsitedir, which runs
    them (editable installs, distutils-precedence). site strips the line, so
    a path that ends in blanks or holds a newline takes addsitedir too."""
    sp = layer.site_packages
    if not layer.pth and sp == sp.strip() and "\n" not in sp and "\r" not in sp:
        return sp + "\n"
    return f"import site; site.addsitedir({sp!r})\n"


def write_entries(root: str, entries: list) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for e in entries:
        p = os.path.join(root, e.path)
        if e.kind == "dir":
            os.mkdir(p, 0o755)
        elif e.kind == "symlink":
            os.symlink(e.data, p)
        else:
            fd = os.open(p, flags, e.mode)
            try:
                os.write(fd, e.data.encode() if isinstance(e.data, str) else e.data)
            finally:
                os.close(fd)


# --- bin/activate ---------------------------------------------------------
#
# The tree's ``bin/activate`` scripts (sh/bash/zsh, fish, csh), as a venv has.
#
# A run already starts activated (VIRTUAL_ENV, PATH); these are for what a
# user or a tool does inside it: ``source "$RUNX_ENV/bin/activate"`` in a
# nested shell whose PATH was reset, and ``deactivate``. They follow CPython's
# venv templates (same variables, same ``deactivate`` semantics), with the
# tree's path baked in: three small files per tree, written with the rest of
# the thin venv (or served by the FUSE tree).

SH = """\
# This file must be sourced: . "{dir}/bin/activate" (sh, bash, zsh)
deactivate () {{
    if [ -n "${{_OLD_VIRTUAL_PATH:-}}" ] ; then
        PATH="${{_OLD_VIRTUAL_PATH:-}}"
        export PATH
        unset _OLD_VIRTUAL_PATH
    fi
    if [ -n "${{_OLD_VIRTUAL_PYTHONHOME:-}}" ] ; then
        PYTHONHOME="${{_OLD_VIRTUAL_PYTHONHOME:-}}"
        export PYTHONHOME
        unset _OLD_VIRTUAL_PYTHONHOME
    fi
    if [ -n "${{BASH:-}}" -o -n "${{ZSH_VERSION:-}}" ] ; then
        hash -r 2> /dev/null
    fi
    if [ -n "${{_OLD_VIRTUAL_PS1:-}}" ] ; then
        PS1="${{_OLD_VIRTUAL_PS1:-}}"
        export PS1
        unset _OLD_VIRTUAL_PS1
    fi
    unset VIRTUAL_ENV
    unset VIRTUAL_ENV_PROMPT
    if [ ! "${{1:-}}" = "nondestructive" ] ; then
        unset -f deactivate
    fi
}}

deactivate nondestructive

VIRTUAL_ENV={q}
export VIRTUAL_ENV

_OLD_VIRTUAL_PATH="$PATH"
PATH="$VIRTUAL_ENV/bin:$PATH"
export PATH

if [ -n "${{PYTHONHOME:-}}" ] ; then
    _OLD_VIRTUAL_PYTHONHOME="${{PYTHONHOME:-}}"
    unset PYTHONHOME
fi

if [ -z "${{VIRTUAL_ENV_DISABLE_PROMPT:-}}" ] ; then
    _OLD_VIRTUAL_PS1="${{PS1:-}}"
    PS1="(runx) ${{PS1:-}}"
    export PS1
    VIRTUAL_ENV_PROMPT="(runx) "
    export VIRTUAL_ENV_PROMPT
fi

if [ -n "${{BASH:-}}" -o -n "${{ZSH_VERSION:-}}" ] ; then
    hash -r 2> /dev/null
fi
"""

FISH = """\
# This file must be sourced: source "{dir}/bin/activate.fish" (fish)
function deactivate -d "Exit the runx environment and return to the normal environment."
    if test -n "$_OLD_VIRTUAL_PATH"
        set -gx PATH $_OLD_VIRTUAL_PATH
        set -e _OLD_VIRTUAL_PATH
    end
    if test -n "$_OLD_VIRTUAL_PYTHONHOME"
        set -gx PYTHONHOME $_OLD_VIRTUAL_PYTHONHOME
        set -e _OLD_VIRTUAL_PYTHONHOME
    end
    if test -n "$_OLD_FISH_PROMPT_OVERRIDE"
        set -e _OLD_FISH_PROMPT_OVERRIDE
        if functions -q _old_fish_prompt
            functions -e fish_prompt
            functions -c _old_fish_prompt fish_prompt
            functions -e _old_fish_prompt
        end
    end
    set -e VIRTUAL_ENV
    set -e VIRTUAL_ENV_PROMPT
    if test "$argv[1]" != "nondestructive"
        functions -e deactivate
    end
end

deactivate nondestructive

set -gx VIRTUAL_ENV {q}
set -gx _OLD_VIRTUAL_PATH $PATH
set -gx PATH "$VIRTUAL_ENV/bin" $PATH

if set -q PYTHONHOME
    set -gx _OLD_VIRTUAL_PYTHONHOME $PYTHONHOME
    set -e PYTHONHOME
end

if test -z "$VIRTUAL_ENV_DISABLE_PROMPT"
    functions -c fish_prompt _old_fish_prompt
    function fish_prompt
        set -l old_status $status
        printf "%s%s%s" (set_color 4B8BBE) "(runx) " (set_color normal)
        echo "exit $old_status" | .
        _old_fish_prompt
    end
    set -gx _OLD_FISH_PROMPT_OVERRIDE "$VIRTUAL_ENV"
    set -gx VIRTUAL_ENV_PROMPT "(runx) "
end
"""

CSH = """\
# This file must be sourced: source "{dir}/bin/activate.csh" (csh, tcsh)
alias deactivate 'test $?_OLD_VIRTUAL_PATH != 0 && setenv PATH "$_OLD_VIRTUAL_PATH" && unset _OLD_VIRTUAL_PATH; rehash; test $?_OLD_VIRTUAL_PROMPT != 0 && set prompt="$_OLD_VIRTUAL_PROMPT" && unset _OLD_VIRTUAL_PROMPT; unsetenv VIRTUAL_ENV; unsetenv VIRTUAL_ENV_PROMPT; test "\\!:*" != "nondestructive" && unalias deactivate'

deactivate nondestructive

setenv VIRTUAL_ENV {q}

set _OLD_VIRTUAL_PATH="$PATH"
setenv PATH "$VIRTUAL_ENV/bin:$PATH"

if (! "$?VIRTUAL_ENV_DISABLE_PROMPT") then
    set _OLD_VIRTUAL_PROMPT="$prompt"
    set prompt = "(runx) $prompt"
    setenv VIRTUAL_ENV_PROMPT "(runx) "
endif

rehash
"""  # noqa: E501 (virtualenv's activate.csh, line for line)


def activate_scripts(tree: str) -> list:
    """[(name, text)] of the activate scripts for the tree at ``tree``."""
    q = "'" + tree.replace("'", "'\\''") + "'"     # one word in sh, fish and csh
    return [("activate", SH.format(dir=tree, q=q)),
            ("activate.fish", FISH.format(dir=tree, q=q)),
            ("activate.csh", CSH.format(dir=tree, q=q))]
