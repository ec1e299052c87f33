"""Byte-code is shared across layers: a source file the layers share (uv's
cache hardlinked into each) gets one .pyc, hardlinked into every layer from
<cache>/bytecode, and imports use it as they would their own."""

import json
import os

import pytest

from conftest import Runx, build_wheel, wait_until


@pytest.fixture
def cold(runx, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(str(wheels))
    build_wheel(str(wheels), "runxextra", "2.0", scripts={})
    r = Runx(runx.runtime, str(tmp_path / "cache"), str(wheels))
    # The finisher compiles with -I: the outcome must not depend on this.
    r.env.pop("PYTHONDONTWRITEBYTECODE", None)
    yield r
    r.wait_clean()


def frozen_builds(cache: str) -> list:
    from runx_env.reaper import store

    out = [b.path for b in store.builds(cache)]
    for p in out:
        wait_until(lambda: json.load(open(os.path.join(p, "runx-layer.json")))["compiled"]
                   and not os.stat(os.path.join(p, "runx-layer.marshal")).st_mode & 0o222,
                   30, f"{p} to be compiled and frozen")
    return out


def demo_pycs(build: str) -> dict:
    """{name: stat} of runxdemo's .pyc files in a build."""
    (site,) = [d for d, _, _ in os.walk(build) if d.endswith("site-packages/runxdemo")]
    cache = os.path.join(site, "__pycache__")
    return {n: os.stat(os.path.join(cache, n)) for n in os.listdir(cache)}


# The payload: import runxdemo and report whether the import system had to
# compile its source (SourceLoader.source_to_code is called only when no
# valid .pyc was found), and the code's file name.
PROBE = """\
import importlib._bootstrap_external as be, json, sys
compiled = []
orig = be.SourceLoader.source_to_code
def spy(self, data, path, **kw):
    compiled.append(path)
    return orig(self, data, path, **kw)
be.SourceLoader.source_to_code = spy
import runxdemo
print(json.dumps({"compiled": [p for p in compiled if "runxdemo" in p],
                  "file": runxdemo.__file__, "co_filename": runxdemo.main.__code__.co_filename,
                  "cached": runxdemo.__cached__}))
"""


def test_two_layers_share_a_packages_bytecode(cold):
    assert cold.run("--with", "runxdemo", "true").returncode == 0
    cold.wait_clean()
    (a,) = frozen_builds(cold.cache)
    assert cold.run("--with", "runxdemo", "--with", "runxextra", "true").returncode == 0
    cold.wait_clean()
    (b,) = [p for p in frozen_builds(cold.cache) if p != a]
    pa, pb = demo_pycs(a), demo_pycs(b)
    assert pa and pa.keys() == pb.keys()
    for name in pa:
        assert (pa[name].st_dev, pa[name].st_ino) == (pb[name].st_dev, pb[name].st_ino), \
            f"{name}: each layer has its own copy"
        assert not pa[name].st_mode & 0o222, "a shared .pyc is read-only"
    store = os.path.join(cold.cache, "bytecode")
    stored = {(os.stat(os.path.join(d, f)).st_ino) for d, _, fs in os.walk(store) for f in fs}
    assert {s.st_ino for s in pa.values()} <= stored

    # Both layers import from the shared .pyc: no compile, right file names.
    for spec in (["--with", "runxdemo"], ["--with", "runxdemo", "--with", "runxextra"]):
        r = cold.run(*spec, "python", "-c", PROBE)
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)
        assert info["compiled"] == [], f"the import recompiled {info['compiled']}"
        assert info["co_filename"] == info["file"], "tracebacks must name this layer's file"
        assert os.path.exists(info["cached"])
    cold.wait_clean()


def test_unshared_bytecode_expires_with_its_last_layer(cold):
    """The store holds only what some layer links: prune removes the rest."""
    assert cold.run("--with", "runxdemo", "true").returncode == 0
    cold.wait_clean()
    frozen_builds(cold.cache)
    store = os.path.join(cold.cache, "bytecode")
    assert any(fs for _, _, fs in os.walk(store))
    cold.env["RUNX_CACHE_MAX_AGE"] = "0"
    r = cold.run("cache", "prune", local=False)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(store), r.stdout
    assert not os.path.exists(os.path.join(cold.cache, "layers")), r.stdout
