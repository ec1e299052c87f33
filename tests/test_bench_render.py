"""benchlib renders measured tables into marked blocks of a hand-written doc:
it replaces only what stands between a block's markers, and refuses a doc
that lacks them with a message naming the doc and the missing marker."""

import difflib
import importlib.util
import os

import pytest

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts")


def _benchlib():
    spec = importlib.util.spec_from_file_location("benchlib", os.path.join(SCRIPTS, "benchlib.py"))
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.fast
def test_render_replaces_only_the_marked_block(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("Prose before.\n<!-- bench:t begin -->\nold\n<!-- bench:t end -->\nProse after.\n")
    _benchlib().render(str(doc), {"t": "| a |\n|---|\n| 1 |"})
    assert doc.read_text() == ("Prose before.\n<!-- bench:t begin -->\n| a |\n|---|\n| 1 |\n"
                               "<!-- bench:t end -->\nProse after.\n")


@pytest.mark.fast
def test_render_refuses_a_doc_without_markers(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("Only prose, no blocks.\n")
    with pytest.raises(SystemExit) as exc:
        _benchlib().render(str(doc), {"peers": "| a |"})
    assert str(exc.value) == (f"bench: {doc} has no block <!-- bench:peers begin --> … "
                              "<!-- bench:peers end -->")
    assert doc.read_text() == "Only prose, no blocks.\n"


# The committed doc, the committed runs and the renderers agree: rendering
# docs/bench/peers.json (scripts/bench) and docs/bench/warm.json
# (scripts/bench-warm) into a copy of docs/benchmarks.md changes nothing. A
# table edited by hand, a JSON replaced without re-rendering, or a renderer
# changed without re-rendering fails here. No hyperfine, no network: PATH
# holds nothing, the scripts run on this interpreter.
REPO = os.path.dirname(SCRIPTS)


def test_committed_doc_is_the_rendering_of_the_committed_runs(tmp_path):
    import shutil
    import subprocess
    import sys

    doc = os.path.join(REPO, "docs", "benchmarks.md")
    copy = tmp_path / "benchmarks.md"
    shutil.copy(doc, copy)
    # Blank every block first: a renderer that skipped one would otherwise
    # leave the committed text in place and pass.
    text = copy.read_text()
    names = [part.split(" begin -->", 1)[0] for part in text.split("<!-- bench:")[1:]
             if " begin -->" in part.split("\n", 1)[0]]
    assert {"peers-machine", "peers-targets", "peers-warm", "peers-cold", "peers-memory",
            "peers-cleanup", "peers-anatomy", "warm-installs", "cache-disk"} <= set(names)
    _benchlib().render(str(copy), {name: "(stale)" for name in names})
    env = {"PATH": "/nonexistent"}
    for script, saved, out in (
            ("bench", "peers.json", ["--out", str(tmp_path)]),
            ("bench-warm", "warm.json", ["--doc", str(copy)])):
        p = subprocess.run([sys.executable, os.path.join(SCRIPTS, script), "--render-only",
                            os.path.join(REPO, "docs", "bench", saved), *out],
                           env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
    got, want = copy.read_text(), open(doc).read()
    assert "(stale)" not in got
    assert got == want, "".join(difflib.unified_diff(
        want.splitlines(True), got.splitlines(True), "docs/benchmarks.md", "rendered"))


def test_fuse_doc_is_the_rendering_of_its_committed_run(tmp_path):
    """The same for docs/fuse.md and scripts/bench-fuse's saved run."""
    import shutil
    import subprocess
    import sys

    doc = os.path.join(REPO, "docs", "fuse.md")
    copy = tmp_path / "fuse.md"
    shutil.copy(doc, copy)
    names = ["fuse-run", "fuse-e2e", "fuse-inside", "fuse-scale"]
    _benchlib().render(str(copy), {name: "(stale)" for name in names})
    p = subprocess.run([sys.executable, os.path.join(SCRIPTS, "bench-fuse"), "--render-only",
                        os.path.join(REPO, "docs", "bench", "fuse.json"), "--doc", str(copy)],
                       env={"PATH": "/nonexistent"}, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    got, want = copy.read_text(), open(doc).read()
    assert "(stale)" not in got
    assert got == want, "".join(difflib.unified_diff(
        want.splitlines(True), got.splitlines(True), "docs/fuse.md", "rendered"))
