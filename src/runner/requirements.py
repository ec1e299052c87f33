"""What to install: the requirement set a run asks for, normalized into a key.

runx never interprets requirements beyond what it needs to name a cached
layer (uv resolves and validates them); it only normalizes spelling so that
``--with Cowsay`` and ``--with cowsay`` share a layer, and tells pinned sets
(``name==1.2``) from ones that must be re-resolved from time to time.
"""

import os


# This module is on the warm path: no re, hashlib, dataclasses or json here
# (together they cost more than the rest of a warm run; see docs/benchmarks.md).
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
    out = []
    for ch in req[:i].lower():
        if ch in "-_.":
            if not out or out[-1] != "-":
                out.append("-")
        else:
            out.append(ch)
    return "".join(out) + req[i:]


class Spec:
    """Everything that decides what a layer contains (the layer key's input)."""

    def __init__(self, requirements=(), requirement_files=(), index_url=None,
                 extra_index_urls=(), find_links=(), no_index=False, uv_options=()):
        self.requirements = list(requirements)
        self.requirement_files = list(requirement_files)     # absolute paths
        self.index_url = index_url
        self.extra_index_urls = list(extra_index_urls)
        self.find_links = list(find_links)
        self.no_index = no_index
        # uv's resolver/index/build options as uv pip install spells them
        # (runner.options, where "layer"): in order, since order can matter to uv.
        self.uv_options = list(uv_options)

    @property
    def empty(self) -> bool:
        return not self.requirements and not self.requirement_files

    @property
    def pinned(self) -> bool:
        """True when re-resolving could not change the result (all ``==`` pins)."""
        import re

        if self.requirement_files:
            return False
        return all(re.match(_PINNED, normalize(r)) for r in self.requirements)

    def digest(self) -> str:
        h = _hash(digest_size=20)
        for r in sorted(set(normalize(r) for r in self.requirements)):
            h.update(b"req\0" + r.encode() + b"\0")
        for path in self.requirement_files:
            h.update(b"file\0" + read_requirements_file(path) + b"\0")
        h.update(b"index\0" + (self.index_url or "").encode() + b"\0")
        for u in self.extra_index_urls:
            h.update(b"extra\0" + u.encode() + b"\0")
        for u in self.find_links:
            h.update(b"links\0" + u.encode() + b"\0")
        h.update(b"noindex\0" + (b"1" if self.no_index else b"0"))
        previous = None
        for a in self.uv_options:
            h.update(b"uv\0" + a.encode() + b"\0")
            if previous in _FILE_OPTIONS:      # the file's content decides, not its name
                h.update(b"content\0" + read_requirements_file(a) + b"\0")
            previous = a
        # uv also reads its index settings from the environment: they change
        # what a layer contains, so they are part of its name.
        for var in ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX", "UV_EXTRA_INDEX_URL",
                    "UV_FIND_LINKS", "UV_NO_INDEX", "UV_PRERELEASE", "UV_RESOLUTION",
                    "UV_EXCLUDE_NEWER", "UV_CONSTRAINT", "UV_OVERRIDE"):
            v = os.environ.get(var)
            if v:
                h.update(var.encode() + b"=" + v.encode() + b"\0")
        return h.hexdigest()

    def uv_args(self) -> list[str]:
        """The arguments that make ``uv pip install`` install exactly this set."""
        args: list[str] = []
        if self.index_url:
            args += ["--index-url", self.index_url]
        for u in self.extra_index_urls:
            args += ["--extra-index-url", u]
        for u in self.find_links:
            args += ["--find-links", u]
        if self.no_index:
            args.append("--no-index")
        for path in self.requirement_files:
            args += ["-r", path]
        args += self.uv_options
        args += self.requirements
        return args


def read_requirements_file(path: str) -> bytes:
    from runner.paths import read_input

    return read_input(path, "requirements file", "check the path given to --with-requirements")
