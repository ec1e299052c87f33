"""Cached layers and thin trees: a layer is built once, immutable,
byte-compiled and shared; the payload's writes land in its own tree; a build
in use is never pruned; the uv options that change what is installed
(--refresh, --offline, indexes) act on the layer cache as uv's do."""

import json
import os


from conftest import build_wheel, layer_builds, live_run, one_error_line, wait_until


def test_layer_is_built_once_and_reused(cold):
    assert cold.run("--with", "runxdemo", "runxdemo").returncode == 0
    first = layer_builds(cold.cache)
    assert len(first) == 1 and len(next(iter(first.values()))) == 1
    assert cold.run("--with", "RunxDemo", "runxdemo").returncode == 0, "names are normalized"
    assert layer_builds(cold.cache) == first, "a warm run must not build again"
    cold.wait_clean()


def test_layer_is_byte_compiled_and_read_only(cold):
    """Published at once, then compiled and frozen in the background by the
    reaper (the cold run does not pay for byte-compiling)."""
    cold.run("--with", "runxdemo", "runxdemo")
    ((key, (build,)),) = layer_builds(cold.cache).items()
    root = os.path.join(cold.cache, "layers", key, build)
    manifest = os.path.join(root, "runx-layer.json")
    wait_until(lambda: json.load(open(manifest))["compiled"], 30,
               "the reaper to compile and freeze the new layer")
    site = [d for d, _, files in os.walk(root) if d.endswith("site-packages/runxdemo")][0]
    assert any(f.endswith(".pyc") for f in os.listdir(os.path.join(site, "__pycache__")))
    for d, _dirs, _ in os.walk(root):
        assert not os.stat(d).st_mode & 0o222, f"{d} is writable"
    cold.wait_clean()


def test_tree_is_thin_and_writes_land_in_it(cold, tmp_path):
    """The tree holds only the thin venv; a package installed by the payload
    goes into the tree (and goes with it), never into the shared layer."""
    wheels = tmp_path / "more-wheels"
    wheels.mkdir()
    build_wheel(str(wheels), "runxextra", "2.0", scripts={})
    code = ("import os, subprocess, sys, json; tree = os.environ['RUNX_ENV']; "
            "files = sum(len(f) for _, _, f in os.walk(tree)); "
            "uv = os.environ['UV_BIN']; "
            "subprocess.run([uv, 'pip', 'install', '-q', '--python', sys.executable, "
            "'--no-index', '--find-links', sys.argv[1], 'runxextra'], check=True); "
            "import runxextra, runxdemo; "
            "print(json.dumps({'files': files, 'extra': runxextra.__file__, "
            "'demo': runxdemo.__file__}))")
    from uv import find_uv_bin

    cold.env["UV_BIN"] = find_uv_bin()
    r = cold.run("--with", "runxdemo", "python", "-c", code, str(wheels))
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["files"] < 20, "the tree must be a thin venv, independent of the layer's size"
    assert info["extra"].startswith(cold.runtime + "/"), "payload installs land in its tree"
    assert info["demo"].startswith(cold.cache + "/"), "requested packages come from the layer"
    cold.wait_clean()
    layer_files = [f for d, _, fs in os.walk(os.path.join(cold.cache, "layers")) for f in fs]
    assert not any("runxextra" in f for f in layer_files)


def test_no_cache_persists_nothing(cold):
    r = cold.run("--no-cache", "--with", "runxdemo", "runxdemo")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[2].startswith(cold.runtime + "/")
    assert layer_builds(cold.cache) == {}
    cold.wait_clean()


def test_refresh_rebuilds_and_old_build_serves_running_trees(cold):
    with live_run(cold, "--with", "runxdemo", imports="runxdemo"):
        assert cold.run("--refresh", "--with", "runxdemo", "runxdemo").returncode == 0
        ((key, builds),) = layer_builds(cold.cache).items()
        assert len(builds) == 2, "refresh makes a new build beside the one in use"
        r = cold.run("cache", "prune", local=False)
        assert "nothing to prune" in r.stdout, "prune must not remove a build a live tree uses"
    cold.wait_clean()

    def finished():                 # the refreshed build's finisher (runx-compile) is done
        import fcntl

        fd = os.open(os.path.join(cold.cache, "layers", key, "lock"), os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    wait_until(finished, 60, "the refreshed build to be compiled (its key lock free)")
    r = cold.run("cache", "prune", local=False)
    assert r.stdout.startswith("removed "), r.stdout
    assert len(layer_builds(cold.cache)[key]) == 1


def test_unpinned_layer_is_rebuilt_after_freshness_window(cold):
    cold.run("--with", "runxdemo", "runxdemo")
    cold.env["RUNX_FRESHNESS"] = "0"
    cold.run("--with", "runxdemo", "runxdemo")
    ((_, builds),) = layer_builds(cold.cache).items()
    assert len(builds) == 2, "unpinned: re-resolved once the window passed"
    cold.run("--offline", "--with", "runxdemo", "runxdemo")
    assert len(layer_builds(cold.cache)[_]) == 2, "--offline accepts a stale layer"
    cold.wait_clean()


def test_pinned_layer_never_expires(cold):
    cold.env["RUNX_FRESHNESS"] = "0"
    cold.run("--with", "runxdemo==1.0", "runxdemo")
    cold.run("--with", "runxdemo==1.0", "runxdemo")
    ((_, builds),) = layer_builds(cold.cache).items()
    assert len(builds) == 1
    cold.wait_clean()


def test_cache_clean_refuses_while_trees_live(cold):
    with live_run(cold, "--with", "runxdemo"):
        r = cold.run("cache", "clean", local=False)
        assert r.returncode == 2 and "live environment" in r.stderr
    cold.wait_clean()
    # The layer's finisher (byte-compile) may still hold the key: clean skips
    # a busy key and says so, then empties it once the finisher is done.
    wait_until(lambda: cold.run("cache", "clean", local=False).returncode == 0
               and layer_builds(cold.cache) == {}, 60, "clean to empty the cache")


# --- the uv options and the layer cache --------------------------------------

def test_refresh_and_offline_with_the_layer_cache(runx, tmp_path):
    cache = str(tmp_path / "cache")
    runx.env["RUNX_CACHE_DIR"] = runx.cache = cache
    run = lambda *a, **kw: runx.run(*a, "--with", "runxdemo", "runxdemo", **kw)  # noqa: E731
    assert run().returncode == 0
    (key, (first,)), = layer_builds(cache).items()
    assert run().returncode == 0
    assert layer_builds(cache) == {key: [first]}, "a warm run reuses the layer"
    r = run("--refresh")
    assert r.returncode == 0, r.stderr
    second = [b for b in layer_builds(cache)[key] if b != first]
    assert len(second) == 1, "--refresh builds a new layer beside the old one"
    assert os.readlink(os.path.join(cache, "layers", key, "current")) == second[0]
    # Stale (RUNX_FRESHNESS=0): --offline still uses the cached build…
    stale = dict(runx.env, RUNX_FRESHNESS="0")
    r = run("--offline", "-v", env=stale)
    assert r.returncode == 0, r.stderr
    assert "layer hit" in r.stderr and len(layer_builds(cache)[key]) == 2
    # …while an online run re-resolves it.
    r = run("-v", env=stale)
    assert r.returncode == 0 and "layer miss" in r.stderr
    assert len(layer_builds(cache)[key]) == 3
    runx.wait_clean()


def test_offline_without_a_cached_layer_explains(runx, tmp_path):
    runx.env["RUNX_CACHE_DIR"] = runx.cache = str(tmp_path / "cache")
    r = runx.run("--offline", "--index-url", "http://127.0.0.1:9/simple", "--with",
                 "runxdemo", "python", "-c", "pass", local=False)
    assert r.returncode == 1
    assert "runxdemo" in r.stderr, "uv's explanation is shown"
    assert "uv exited" in one_error_line(r.stderr, alone=False)
    runx.wait_clean()


def simple_index(root, wheel_dir: str, names: list) -> str:
    """A PEP 503 index on disk: file:///…/simple/<name>/ → the wheels."""
    simple = root / "simple"
    for name in names:
        d = simple / name
        d.mkdir(parents=True)
        links = "".join(f'<a href="file://{os.path.join(wheel_dir, w)}">{w}</a>\n'
                        for w in os.listdir(wheel_dir) if w.startswith(name + "-"))
        (d / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")
    return "file://" + str(simple)


def test_index_url_and_extra_index_url(runx, tmp_path, extra):
    main = simple_index(tmp_path / "main", runx.wheelhouse, ["runxdemo"])
    more = simple_index(tmp_path / "more", extra, ["runxextra"])
    code = "import runxdemo, runxextra; print(runxdemo.VERSION, runxextra.VALUE)"
    r = runx.run("--index-url", main, "--extra-index-url", more, "--with", "runxdemo,runxextra",
                 "python", "-c", code, local=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1.0", "42"]
    r = runx.run("--index-url", main, "--with", "runxextra", "python", "-c", "pass", local=False)
    assert r.returncode == 1, "without the extra index runxextra is not found"
    runx.wait_clean()
