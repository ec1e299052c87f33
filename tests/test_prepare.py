"""``runx sync``: the layer a run would use, built, byte-compiled and frozen
before the command returns, with no tree and no reaper left; the next run is
warm, and so is a run in a copy of the cache made right after (a Docker
build's next layer, a CI cache saved after the step), offline."""

import glob
import os
import shutil
import subprocess

import pytest

from conftest import RUNX, Runx, build_wheel, layer_builds, one_error_line, reapers, \
    runtime_entries


SCRIPT = '# /// script\n# dependencies = ["runxdemo"]\n# ///\nimport runxdemo\nprint(runxdemo.VERSION)\n'


def the_layer(cache: str) -> str:
    (key, builds), = layer_builds(cache).items()
    assert len(builds) == 1, builds
    return os.path.join(cache, "layers", key, builds[0])


def assert_finished(layer: str, package: str = "runxdemo") -> None:
    """Compiled (the package's .pyc is there), frozen (no directory writable,
    the manifests read-only: what a warm run believes, see reaper/finish.py)."""
    site, = glob.glob(os.path.join(layer, "lib", "python*", "site-packages"))
    pyc = glob.glob(os.path.join(site, package, "__pycache__", "__init__.*.pyc"))
    assert pyc, f"{package} is not byte-compiled in {layer}"
    for d, dirs, _ in os.walk(layer):
        for x in dirs:
            p = os.path.join(d, x)
            if not os.path.islink(p):
                assert not os.stat(p).st_mode & 0o222, f"{p} is writable"
    assert not os.stat(layer).st_mode & 0o222
    for name in ("runx-layer.marshal", "runx-layer.json"):
        assert not os.stat(os.path.join(layer, name)).st_mode & 0o222, name


def assert_nothing_running(r: Runx) -> None:
    """No tree, no lock, no reaper: at once, not eventually."""
    assert runtime_entries(r.runtime) == [], runtime_entries(r.runtime)
    assert reapers(r.runtime) == []
    assert not any(_cmdline_mentions(r.cache))


def _cmdline_mentions(path: str):
    for n in os.listdir("/proc"):
        if not n.isdigit() or int(n) == os.getpid():
            continue
        try:
            with open(f"/proc/{n}/cmdline", "rb") as f:
                if path.encode() in f.read():
                    yield int(n)
        except OSError:
            pass


def sync(r: Runx, *args, local: bool = True) -> subprocess.CompletedProcess:
    """``runx sync [--find-links wheelhouse --no-index] ARGS``."""
    pre = ["--find-links", r.wheelhouse, "--no-index"] if local else []
    return subprocess.run([RUNX, "sync", *pre, *args], capture_output=True, text=True,
                          timeout=120, env=r.env)


def warm(r: Runx, *args) -> subprocess.CompletedProcess:
    """A run that must find its layer finished: `-v` says hit, no compile."""
    p = r.run("-v", *args)
    assert p.returncode == 0, p.stderr
    assert "layer hit" in p.stderr and "layer miss" not in p.stderr, p.stderr
    return p


def test_sync_with_leaves_a_finished_layer_and_nothing_running(cold):
    p = sync(cold, "--with", "runxdemo")
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""
    assert "runx: ready:" in p.stderr and "compiled" in p.stderr
    assert_nothing_running(cold)
    layer = the_layer(cold.cache)
    assert_finished(layer)
    out = warm(cold, "--with", "runxdemo", "runxdemo")
    assert out.stdout.startswith("runxdemo 1.0")
    assert layer_builds(cold.cache) == {os.path.basename(os.path.dirname(layer)):
                                        [os.path.basename(layer)]}
    # Again: already finished, nothing to do, still exit 0.
    p = sync(cold, "--with", "runxdemo", "-q")
    assert (p.returncode, p.stderr) == (0, "")


def test_sync_script_and_tool_mode(cold, tmp_path):
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    p = sync(cold, str(script), "ignored", "args")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "", "the script did not run"
    assert_nothing_running(cold)
    assert_finished(the_layer(cold.cache))
    assert warm(cold, str(script)).stdout == "1.0\n"

    tools = Runx(cold.runtime, str(tmp_path / "tool-cache"), cold.wheelhouse)
    p = sync(tools, "runxdemo", "exit", "3")
    assert p.returncode == 0, p.stderr          # runxdemo exit 3 was not run
    assert_nothing_running(tools)
    assert_finished(the_layer(tools.cache))
    assert warm(tools, "runxdemo", "exit", "0").returncode == 0


def test_sync_waits_for_a_background_finisher(cold):
    """A run published the layer and its reaper is compiling it: sync returns
    only when that is done (it waits for the key's lock, then sees it)."""
    p = cold.run("--with", "runxdemo", "python", "-c", "pass")
    assert p.returncode == 0, p.stderr
    s = sync(cold, "--with", "runxdemo")
    assert s.returncode == 0, s.stderr
    assert_finished(the_layer(cold.cache))
    cold.wait_clean()


def test_sync_racing_runs_and_syncs_always_returns_a_finished_layer(cold, tmp_path):
    """A run (whose reaper compiles in the background), a second sync and a
    sync started together on a cold cache, repeatedly: each sync returns
    with the layer compiled and frozen, whoever built or compiled it."""
    for i in range(8):
        r = Runx(cold.runtime, str(tmp_path / f"cache-{i}"), cold.wheelhouse)
        procs = [r.popen("--with", "runxdemo", "python", "-c", "pass", stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)]
        argv = [RUNX, "sync", "--find-links", r.wheelhouse, "--no-index", "--with", "runxdemo"]
        procs += [subprocess.Popen(argv, env=r.env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
        assert all(code == 0 for code, _, _ in results), results
        for _, _, err in results[1:]:
            assert "runx: ready:" in err, err
        assert_finished(the_layer(r.cache))
        r.wait_clean()


def test_sync_errors_are_one_line(cold):
    p = sync(cold, local=False)
    assert p.returncode == 2
    one_error_line(p.stderr, "nothing to prepare", hint=True)
    for bad in (["--no-cache", "--with", "runxdemo"], ["--keep", "--with", "runxdemo"]):
        p = sync(cold, *bad)
        assert p.returncode == 2, p.stderr
        one_error_line(p.stderr, bad[0], hint=True)
    p = sync(cold, "--with", "no-such-package-anywhere")
    assert p.returncode == 1
    assert not os.path.isdir(os.path.join(cold.cache, "layers")) or not any(
        b for b in layer_builds(cold.cache).values())
    assert_nothing_running(cold)
    h = sync(cold, "--help")
    assert h.returncode == 0 and h.stdout.startswith("usage: runx sync")


@pytest.fixture
def local_index(tmp_path):
    """The wheel served over HTTP on a local port (the index of the build
    step); ``stop()`` takes it away (no network in the image)."""
    import functools
    import http.server
    import threading

    d = tmp_path / "served"
    d.mkdir()
    build_wheel(str(d))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(d))
    handler.log_message = lambda *a, **k: None           # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()

    class Index:
        url = f"http://127.0.0.1:{server.server_address[1]}/"

        @staticmethod
        def stop():
            server.shutdown()
            server.server_close()
    yield Index
    if t.is_alive():
        Index.stop()


def test_prepared_cache_copied_into_a_fresh_root_runs_offline_without_compiling(tmp_path,
                                                                                 local_index):
    """A Docker build, emulated: one step prepares (its HOME, its cache, an
    index on a local port); the cache is copied as `COPY --from=build` or a
    CI cache restore would (cp -a, to another place, another HOME); the index
    is gone (no network); the run there finds the layer, imports its
    byte-code as compiled, runs no uv, and writes nothing into the layer."""
    build_root, image_root = tmp_path / "build", tmp_path / "image"
    for root in (build_root, image_root):
        (root / "home").mkdir(parents=True)
    args = ["--find-links", local_index.url, "--no-index", "--with", "runxdemo"]
    first = Runx(str(build_root / "run"), str(build_root / "cache"), "")
    first.env.update(HOME=str(build_root / "home"), UV_CACHE_DIR=str(build_root / "uv"))
    p = sync(first, *args, local=False)
    assert p.returncode == 0, p.stderr
    assert_nothing_running(first)
    # Copied at once: the step is over, nothing may still be writing.
    subprocess.run(["cp", "-a", first.cache, str(image_root / "cache")], check=True)
    local_index.stop()
    subprocess.run(["chmod", "-R", "u+w", str(build_root)], check=True)
    shutil.rmtree(build_root)

    there = Runx(str(image_root / "run"), str(image_root / "cache"), "")
    there.env.update(HOME=str(image_root / "home"), UV_CACHE_DIR=str(image_root / "uv"))
    layer = the_layer(there.cache)
    assert_finished(layer)
    before = {p: os.stat(p).st_mtime_ns for p in glob.glob(f"{layer}/**", recursive=True)}
    p = there.run("-v", *args, "python", "-v", "-c", "import runxdemo", local=False)
    assert p.returncode == 0, p.stderr
    assert "layer hit" in p.stderr and "layer miss" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if "runxdemo" in ln and ln.startswith("# ")]
    assert any(ln.startswith("# code object from ") and layer in ln for ln in lines), lines
    assert not any("stale" in ln or "could not" in ln or "wrote" in ln for ln in lines), lines
    assert not os.path.exists(os.path.join(image_root, "uv")), "uv was not run"
    there.wait_clean()
    after = {p: os.stat(p).st_mtime_ns for p in glob.glob(f"{layer}/**", recursive=True)}
    assert after.keys() == before.keys()
    assert [p for p in before if before[p] != after[p]] in ([], [os.path.join(
        layer, "runx-layer.marshal")]), "only the last-use time of the manifest changes"


def test_sync_is_a_command_in_help():
    h = subprocess.run([RUNX, "--help"], capture_output=True, text=True)
    assert "runx sync" in h.stdout
