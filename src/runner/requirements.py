"""What to install: the requirement set a run asks for, normalized into a key.

runx never interprets requirements beyond what it needs to name a cached
layer (uv resolves and validates them); it only normalizes spelling so that
``--with Cowsay`` and ``--with cowsay`` share a layer, and tells pinned sets
(``name==1.2``) from ones that must be re-resolved from time to time.
"""

import os

from ..errors import UsageError


# _blake2, not hashlib: hashlib (with re, json, dataclasses) costs more than
# the rest of a warm run (docs/benchmarks.md).
try:
    from _blake2 import blake2b as _hash
except ImportError:  # pragma: no cover - CPython builds without _blake2
    from hashlib import blake2b as _hash

_PINNED = r"^[a-z0-9-]+(\[[^\]]*\])?\s*===?\s*[A-Za-z0-9.+!_-]+\s*(;.*)?$"


_FILE_OPTIONS = ("--constraints", "--overrides", "--build-constraints", "--config-file")


def split_with(value: str) -> list[str]:
    """Split a ``--with`` value on the commas that separate requirements.

    Commas also occur inside one requirement (``pkg[a,b]``, ``pkg>=1,<2``):
    a piece that starts with a version operator, or a comma inside brackets,
    belongs to the requirement before it.
    """
    parts: list[str] = []
    depth = 0
    current = ""
    for ch in value:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    out: list[str] = []
    for p in parts:
        p = p.strip()
        if not p:
            continue
        if out and p[0] in "<>=!~":
            out[-1] += "," + p
        else:
            out.append(p)
    return out


def normalize(req: str) -> str:
    """PEP 503 name normalization plus whitespace folding; the rest is kept."""
    req = " ".join(req.split())
    i = 0
    while i < len(req) and (req[i].isalnum() or req[i] in "._-"):
        i += 1
    out: list = []
    for ch in req[:i].lower():
        if ch in "-_.":
            if not out or out[-1] != "-":
                out.append("-")
        else:
            out.append(ch)
    return "".join(out) + req[i:]


class Spec:
    """Everything that decides what a layer contains (the layer key's input).

    Keyword arguments, so that options added later (resolver settings) slot
    in without reordering callers."""

    def __init__(self, requirements=(), requirement_files=(), index_url=None,
                 extra_index_urls=(), find_links=(), no_index=False, uv_options=(), *,
                 editables=(), cwd=None, uv_env=None, quiet_env=None, lock=None,
                 settings_file=None, tool=False):
        self.requirements = list(requirements)
        self.requirement_files = list(requirement_files)     # absolute paths
        self.index_url = index_url
        self.extra_index_urls = list(extra_index_urls)
        self.find_links = list(find_links)
        self.no_index = no_index
        # uv's resolver/index/build options as uv pip install spells them
        # (runx_env.runner.options, where "layer"): in order, since order can matter to uv.
        self.uv_options = list(uv_options)
        self.editables = list(editables)                     # absolute paths
        # Settings uv takes only from its environment (a script's [tool.uv]
        # prerelease, resolution...): for uv's process, never the payload's.
        # ``quiet_env`` changes how uv works, not what it installs: not keyed.
        self._keyed_env = dict(uv_env or {})
        # The user's variables that uv pip reads but uv run (or uvx, in tool
        # mode) does not: unset for uv (None) and not keyed (identity.py).
        self.ignored_vars = identity_ignored(tool)
        self.uv_env = {**dict.fromkeys(self.ignored_vars), **(quiet_env or {}),
                       **self._keyed_env}
        self.lock = lock                    # script_lock.Lock: SCRIPT.lock, or None
        self.settings_file = settings_file  # a requirements file of options only
        # uv runs in the caller's directory: relative paths and the uv
        # configuration it reads are the cwd's, so the key is computed there.
        if cwd is None:
            try:
                cwd = os.getcwd()
            except OSError:         # a deleted cwd: uv cannot resolve anything relative
                cwd = None
        if cwd and os.environ.get("UV_WORKING_DIR"):    # uv changes into it first
            cwd = os.path.abspath(os.path.join(cwd, os.environ["UV_WORKING_DIR"]))
        self.cwd = cwd
        self._local = None

    @property
    def empty(self) -> bool:
        return (not self.requirements and not self.requirement_files and not self.editables
                and self.lock is None)

    @property
    def pinned(self) -> bool:
        """True when re-resolving could not change the result (all ``==`` pins,
        and a script's lock)."""
        import re

        if [f for f in self.requirement_files if f != self.settings_file] or self.editables:
            return False
        return all(re.match(_PINNED, normalize(r)) for r in self.requirements)

    def local(self) -> list:
        """Per requirement: ``(absolute path, text for uv)`` if it names a local
        path (resolved against the cwd, as uv would), else None."""
        if self._local is None:
            from . import identity

            base = self.cwd or "/"
            self._local = [identity.local(r, base) if self.cwd else None
                           for r in self.requirements]
        return self._local

    def digest(self) -> str:
        """The layer key's input: see runx_env.runner.identity and docs/design.md."""
        from . import identity

        h = _hash(digest_size=20)
        entries = set()
        for r, found in zip(self.requirements, self.local()):
            if found:
                entries.add(found[1].encode() + b"\0" + identity.fingerprint(found[0]))
            else:
                entries.add(normalize(r).encode())
        for e in sorted(entries):
            h.update(b"req\0" + e + b"\0")
        for path in self.editables:
            h.update(b"editable\0" + path.encode() + b"\0" + identity.fingerprint(path))
        try:
            if self.requirement_files:
                identity.requirement_files(self.requirement_files, self.cwd or "/", h.update,
                                           read_requirements_file)
            identity.uv_config(self.cwd, h.update, ignored=self.ignored_vars)
        except identity.TooBig as e:
            raise UsageError(str(e), "runx keys a layer by its inputs; split or trim them")
        h.update(b"index\0" + (self.index_url or "").encode() + b"\0")
        for u in self.extra_index_urls:
            h.update(b"extra\0" + u.encode() + b"\0")
        for u in self.find_links:
            h.update(b"links\0" + u.encode() + b"\0")
            if "://" not in u:
                h.update(identity.listing(u) + b"\0")
        h.update(b"noindex\0" + (b"1" if self.no_index else b"0"))
        for k in sorted(self._keyed_env):
            h.update(b"uvenv\0" + k.encode() + b"=" + self._keyed_env[k].encode() + b"\0")
        if self.lock is not None:
            h.update(self.lock.identity() + b"\0")
        previous = None
        for a in self.uv_options:
            h.update(b"uv\0" + a.encode() + b"\0")
            if previous in _FILE_OPTIONS:      # the file's content decides, not its name
                h.update(b"content\0" + read_requirements_file(a) + b"\0")
            previous = a
        return h.hexdigest()

    def index_args(self) -> list[str]:
        """--index-url, --extra-index-url, --find-links, --no-index, as given."""
        args: list[str] = []
        if self.index_url:
            args += ["--index-url", self.index_url]
        for u in self.extra_index_urls:
            args += ["--extra-index-url", u]
        for u in self.find_links:
            args += ["--find-links", u]
        if self.no_index:
            args.append("--no-index")
        return args

    def uv_args(self) -> list[str]:
        """The arguments that make ``uv pip install`` install exactly this set:
        local paths as the absolute paths the key was computed from."""
        args = self.index_args()
        for path in self.requirement_files:
            args += ["-r", path]
        if self.lock is not None and self.lock.export:
            args += ["-r", self.lock.export]
        args += self.uv_options
        for path in self.editables:
            args += ["-e", path]
        args += [found[1] if found else r for r, found in zip(self.requirements, self.local())]
        return args


def identity_ignored(tool: bool) -> frozenset:
    from .identity import PIP_ONLY_VARS, TOOL_ONLY_VARS

    return PIP_ONLY_VARS if tool else PIP_ONLY_VARS | TOOL_ONLY_VARS


def layer_key(spec: Spec, interp) -> str:
    """The name of the layer for ``spec`` on ``interp`` (interpreter.Interpreter):
    everything that decides what uv installs, and the store's format."""
    from ..reaper.store import FORMAT

    h = _hash(digest_size=16)
    h.update(FORMAT.encode() + b"\0" + spec.digest().encode() + b"\0"
             + interp.identity().encode())
    return h.hexdigest()


def read_requirements_file(path: str) -> bytes:
    from .paths import read_input

    return read_input(path, "requirements file",
                      "check the path given to --with-requirements, and the -r/-c "
                      "lines in the files it names")
