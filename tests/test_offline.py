"""Offline after a day (issue 22.1): a layer older than RUNX_FRESHNESS whose
re-resolution fails for a reason of the network or the index is served,
with one warning line; uv's time to find out is bounded (runner/uv.py,
BOUNDS). The index is a real one on a local port (tests/local_index.py),
broken the way networks break; no run sets UV_OFFLINE or --offline."""

import os
import stat
import subprocess
import time

import pytest

from conftest import RUNX, Runx, build_wheel, one_error_line
from local_index import LocalIndex

PROBE = ["python", "-c", "import runxdemo, os; print(os.environ['RUNX_ENV'])"]


@pytest.fixture
def index(tmp_path):
    wheels = tmp_path / "index-wheels"
    wheels.mkdir()
    build_wheel(str(wheels))
    idx = LocalIndex(str(wheels))
    yield idx
    idx.close()


@pytest.fixture
def env(runx, tmp_path):
    """The test's runx, with a cache of its own and uv recorded: RUNX_UV is a
    wrapper that writes the UV_HTTP_* variables uv got, then execs uv."""
    r = Runx(runx.runtime, str(tmp_path / "cache"), runx.wheelhouse)
    real = os.path.join(os.path.dirname(RUNX), "uv")
    record = tmp_path / "uv-env"
    wrapper = tmp_path / "uv"
    wrapper.write_text(f"#!/bin/sh\nenv | grep '^UV_HTTP' | sort > {record}\nexec {real} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    r.env.update(RUNX_UV=str(wrapper), UV_CACHE_DIR=str(tmp_path / "uv-cache"))
    for v in ("UV_OFFLINE", "UV_HTTP_TIMEOUT", "UV_HTTP_CONNECT_TIMEOUT", "UV_HTTP_RETRIES",
              "UV_REQUEST_TIMEOUT", "HTTP_TIMEOUT", "UV_INDEX_URL", "UV_DEFAULT_INDEX",
              "UV_FIND_LINKS"):
        r.env.pop(v, None)
    r.record = record
    yield r
    r.wait_clean()


def _run(env, idx, *extra, freshness="0"):
    started = time.monotonic()
    p = subprocess.run([RUNX, *extra, "--index-url", idx.url, "--with", "runxdemo", *PROBE],
                       env=dict(env.env, RUNX_FRESHNESS=freshness), capture_output=True,
                       text=True, timeout=300)
    return p, time.monotonic() - started


@pytest.mark.parametrize("breakage", ["refuse", "hang"])
def test_a_stale_layer_is_served_when_the_index_cannot_be_reached(env, index, breakage):
    first, _ = _run(env, index, freshness="86400")
    assert first.returncode == 0, first.stderr
    tree_parent = os.path.dirname(first.stdout.strip())
    getattr(index, breakage)()
    r, took = _run(env, index)
    assert r.returncode == 0, r.stderr
    assert os.path.dirname(r.stdout.strip()) == tree_parent
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("runx: warning: could not refresh"), r.stderr
    built = time.strftime("%Y-%m-%d", time.localtime())
    assert f"running the one built {built}" in lines[0], lines[0]
    assert ("Connection refused" if breakage == "refuse" else "timed out") in lines[0], lines[0]
    assert "127.0.0.1" in lines[0] and "at most 2 s to connect" in lines[0]
    # The bound, as uv was given it (not a timing: uv's defaults would take
    # 8 s refused and 125 s hanging here; 60 s is only a sanity ceiling).
    assert env.record.read_text().split() == [
        "UV_HTTP_CONNECT_TIMEOUT=2", "UV_HTTP_RETRIES=0", "UV_HTTP_TIMEOUT=5"]
    assert took < 60, took
    # -q: the run is served and nothing is said.
    q, _ = _run(env, index, "-q")
    assert q.returncode == 0 and q.stderr == "", q.stderr


def test_the_users_own_http_settings_win(env, index):
    first, _ = _run(env, index, freshness="86400")
    assert first.returncode == 0, first.stderr
    index.refuse()
    env.env.update(UV_HTTP_RETRIES="1", UV_REQUEST_TIMEOUT="7")
    r, _ = _run(env, index)
    assert r.returncode == 0, r.stderr
    assert env.record.read_text().split() == ["UV_HTTP_CONNECT_TIMEOUT=2", "UV_HTTP_RETRIES=1"]


def test_requirements_that_can_no_longer_be_satisfied_fail(env, index):
    """The index answers, without the package: not the network's fault, so
    the stale layer is not served; uv's explanation, then runx's line."""
    first, _ = _run(env, index, freshness="86400")
    assert first.returncode == 0, first.stderr
    index.forget()
    r, _ = _run(env, index)
    assert r.returncode == 1, r.stderr
    assert "No solution found" in r.stderr and "could not refresh" not in r.stderr
    one_error_line(r.stderr, "installing the requirements failed", alone=False)


def test_refresh_and_a_fresh_miss_still_fail(env, index):
    """--refresh asked for a new resolution: no fallback. A layer never built
    has nothing to fall back on: uv's full explanation, unbounded."""
    first, _ = _run(env, index, freshness="86400")
    assert first.returncode == 0, first.stderr
    index.refuse()
    r, _ = _run(env, index, "--refresh")
    assert r.returncode == 1 and "Connection refused" in r.stderr, r.stderr
    one_error_line(r.stderr, "installing the requirements failed", alone=False)
    assert not env.record.read_text().strip(), "unbounded: uv's own defaults"
