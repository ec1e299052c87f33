"""What to install: the requirement set a run asks for, normalized into a key.

runx never interprets requirements beyond what it needs to name a cached
layer (uv resolves and validates them); it only normalizes spelling so that
``--with Cowsay`` and ``--with cowsay`` share a layer, and tells pinned sets
(``name==1.2``) from ones that must be re-resolved from time to time.
"""

import hashlib
import os
import re
from dataclasses import dataclass, field

from runner.errors import UsageError

_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")
_PINNED = re.compile(r"^[a-z0-9-]+(\[[^\]]*\])?\s*===?\s*[A-Za-z0-9.+!_-]+\s*(;.*)?$")


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
    m = _NAME.match(req)
    if not m:
        return req
    name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
    return name + req[m.end():]


@dataclass
class Spec:
    """Everything that decides what a layer contains (the layer key's input)."""

    requirements: list[str] = field(default_factory=list)
    requirement_files: list[str] = field(default_factory=list)   # absolute paths
    index_url: str | None = None
    extra_index_urls: list[str] = field(default_factory=list)
    find_links: list[str] = field(default_factory=list)
    no_index: bool = False

    @property
    def empty(self) -> bool:
        return not self.requirements and not self.requirement_files

    @property
    def pinned(self) -> bool:
        """True when re-resolving could not change the result (all ``==`` pins)."""
        if self.requirement_files:
            return False
        return all(_PINNED.match(normalize(r)) for r in self.requirements)

    def digest(self) -> str:
        h = hashlib.sha256()
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
        args += self.requirements
        return args


def read_requirements_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise UsageError(f"cannot read requirements file {path}: {e.strerror}",
                         "check the path given to --with-requirements")
