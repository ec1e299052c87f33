"""PEP 440 version specifiers, as packaging.specifiers reads them: which
Pythons a script's ``requires-python`` admits.

A port of packaging's rules (its Specifier regex, Version ordering and the
operator semantics, with prereleases=True), so that runx accepts exactly the
specifiers packaging (and uv) accept and agrees with packaging on which
versions they contain. tests/test_pep723.py checks both against packaging's
own test cases and against packaging itself. ``re`` loads only here: a
script with requires-python, never a plain ``--with`` run.
"""

from ..errors import UsageError

_PRE_RE = r"[-_\.]?(alpha|beta|preview|pre|a|b|c|rc)[-_\.]?[0-9]*"
_POST_RE = r"(?:-[0-9]+)|(?:[-_\.]?(post|rev|r)[-_\.]?[0-9]*)"
_DEV_RE = r"[-_\.]?dev[-_\.]?[0-9]*"
_SPEC_RE = (
    r"\s*(?:"
    r"(?:===\s*[^\s;)]*)"
    r"|(?:(?:==|!=)\s*v?(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*"
    r"(?:\.\*|(?:" + _PRE_RE + r")?(?:" + _POST_RE + r")?(?:" + _DEV_RE + r")?"
    r"(?:\+[a-z0-9]+(?:[-_\.][a-z0-9]+)*)?)?)"
    r"|(?:~=\s*v?(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)+"
    r"(?:" + _PRE_RE + r")?(?:" + _POST_RE + r")?(?:" + _DEV_RE + r")?)"
    r"|(?:(?:<=|>=|<|>)\s*v?(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*"
    r"(?:" + _PRE_RE + r")?(?:" + _POST_RE + r")?(?:" + _DEV_RE + r")?)"
    r")\s*")
_VERSION_RE = (
    r"\s*v?(?:(?P<epoch>[0-9]+)!)?(?P<release>[0-9]+(?:\.[0-9]+)*)"
    r"(?P<pre>[-_\.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_\.]?(?P<pre_n>[0-9]+)?)?"
    r"(?P<post>(?:-(?P<post_n1>[0-9]+))|(?:[-_\.]?(?P<post_l>post|rev|r)[-_\.]?"
    r"(?P<post_n2>[0-9]+)?))?"
    r"(?P<dev>[-_\.]?(?P<dev_l>dev)[-_\.]?(?P<dev_n>[0-9]+)?)?"
    r"(?:\+(?P<local>[a-z0-9]+(?:[-_\.][a-z0-9]+)*))?\s*")
_PRE_NAMES = {"alpha": "a", "a": "a", "beta": "b", "b": "b", "c": "rc", "rc": "rc",
              "pre": "rc", "preview": "rc"}
_INF = float("inf")


def _key(epoch, release, pre=None, post=None, dev=None, local=None) -> tuple:
    """packaging's Version sort key (_cmpkey), as one comparable tuple."""
    release = list(release)
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    pre_k: tuple
    if pre is None and post is None and dev is not None:
        pre_k = (-_INF,)                        # 1.0.dev0 < 1.0a0
    elif pre is None:
        pre_k = (_INF,)
    else:
        pre_k = ("abr".index(pre[0][0]), pre[1])    # a < b < rc
    post_k = (-_INF,) if post is None else (post,)
    dev_k = (_INF,) if dev is None else (dev,)
    loc_k = ((-_INF,),) if local is None else tuple(
        (p, "") if isinstance(p, int) else (-_INF, p) for p in local)
    return (epoch, tuple(release), pre_k, post_k, dev_k, loc_k)


class _V:
    """A parsed PEP 440 version."""

    __slots__ = ("epoch", "release", "pre", "post", "dev", "local", "key")

    def __init__(self, m):
        self.epoch = int(m.group("epoch") or 0)
        self.release = tuple(int(x) for x in m.group("release").split("."))
        self.pre = ((_PRE_NAMES[m.group("pre_l").lower()], int(m.group("pre_n") or 0))
                    if m.group("pre") else None)
        self.post = (int(m.group("post_n1") or m.group("post_n2") or 0)
                     if m.group("post") else None)
        self.dev = int(m.group("dev_n") or 0) if m.group("dev") else None
        local = m.group("local")
        self.local = (tuple(int(p) if p.isdigit() else p.lower()
                            for p in local.replace("-", ".").replace("_", ".").split("."))
                      if local else None)
        self.key = _key(self.epoch, self.release, self.pre, self.post, self.dev, self.local)

    @property
    def is_prerelease(self):
        return self.pre is not None or self.dev is not None

    def same_family(self, v: "_V", *, post: bool) -> bool:
        """Is ``v`` this version but for a local label (post=False) or also
        any post-release (post=True)? packaging's AFTER_LOCALS/AFTER_POSTS."""
        mine = _trim(self.release)
        if v.epoch != self.epoch or len(v.release) < len(mine):
            return False
        if v.release[:len(mine)] != mine or any(v.release[len(mine):]):
            return False
        if v.pre != self.pre:
            return False
        if post:
            return True
        return v.post == self.post and v.dev == self.dev


def _trim(release: tuple) -> tuple:
    parts = list(release)
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _parse_version(text: str):
    import re

    m = re.fullmatch(_VERSION_RE, text, re.ASCII | re.IGNORECASE)
    return _V(m) if m else None


def _next_prefix_dev0(epoch: int, release: tuple) -> tuple:
    """1.2 -> the key of 1.3.dev0: the first version past the prefix."""
    return _key(epoch, (*release[:-1], release[-1] + 1), dev=0)


_MIN_KEY = _key(0, (0,), dev=0)     # 0.dev0, the smallest version


def _contains(op: str, text: str, v: "_V", raw: str) -> bool:
    """packaging's Specifier.contains(raw, prereleases=True), by its ranges
    (packaging/_ranges.py: standard_ranges, wildcard_ranges)."""
    if op == "===":
        return raw.strip().lower() == text.lower()
    if v is None:
        return False
    k = v.key
    if text.endswith(".*"):
        base = _parse_version(text[:-2])
        inside = _key(base.epoch, base.release, dev=0) <= k < _next_prefix_dev0(
            base.epoch, base.release)
        return inside if op == "==" else not inside
    spec = _parse_version(text)
    if op == ">=":
        return k >= spec.key
    if op == "<=":
        return k <= spec.key or spec.same_family(v, post=False)
    if op == "<":
        # <V excludes V's pre-releases unless V is one: the bound is V.dev0.
        bound = spec.key if spec.is_prerelease else _key(spec.epoch, spec.release, spec.pre,
                                                         spec.post, 0)
        return bound > _MIN_KEY and k < bound
    if op == ">":
        if spec.dev is not None:
            return k >= _key(spec.epoch, spec.release, spec.pre, spec.post, spec.dev + 1)
        if spec.post is not None:
            return k >= _key(spec.epoch, spec.release, spec.pre, spec.post + 1, 0)
        # >V excludes V itself, V+local and V's post-releases (PEP 440).
        return k > spec.key and not spec.same_family(v, post=True)
    if op == "~=":
        return spec.key <= k < _next_prefix_dev0(spec.epoch, spec.release[:-1])
    # == and !=: a spec without a local label matches V's local versions too.
    if spec.local is not None:
        inside = k == spec.key
    else:
        inside = k == spec.key or (k > spec.key and spec.same_family(v, post=False))
    return inside if op == "==" else not inside


def parse_specifier(spec: str, path: str = "<script>") -> list:
    """``">=3.9, !=3.10.*"`` → [(op, version text)], or a UsageError naming
    the first clause packaging would refuse."""
    import re

    out = []
    for clause in spec.split(","):
        if not clause.strip():
            continue        # as packaging: empty clauses ("", ">=3.8,") drop out
        if not re.fullmatch(_SPEC_RE, clause, re.ASCII | re.IGNORECASE):
            raise UsageError(f"{path}: invalid requires-python {spec!r} (at {clause.strip()!r})",
                             'write e.g. ">=3.10" or ">=3.9, <3.13" (PEP 440)')
        clause = clause.strip()
        op = next(o for o in ("===", "~=", "==", "!=", "<=", ">=", "<", ">")
                  if clause.startswith(o))
        out.append((op, clause[len(op):].strip()))
    return out


def satisfies(version: str, spec: str) -> bool:
    """Does ``version`` ("3.11.7") satisfy ``spec``? packaging's
    ``SpecifierSet(spec).contains(version, prereleases=True)``."""
    v = _parse_version(version)
    return all(_contains(op, text, v, version) for op, text in parse_specifier(spec))
