"""Issue 20.4: removal is iterative (bounded fds and memory whatever the
depth and width) and keeps every guarantee of docs/reliability.md ("Removal
never leaves the tree"); a tree that cannot be removed never stops the
removal of the others, and `runx gc` says which and why (exit 1).
The scenario of the issue itself is tests/fault_scenarios.py's
deep_tree_among_stale_ones."""

import os
import subprocess
import sys

import pytest

from conftest import owners_gone, wait_until
from fault_scenarios import make_deep, stale_tree
from runx_env.reaper import removal
from runx_env.reaper.removal import remove_tree

# Removing under a tiny fd limit: the old walk held two fds per level.
UNDER_LIMIT = r"""
import os, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
from runx_env.reaper.removal import remove_tree
print(remove_tree(sys.argv[1], "tree"))
"""


def remove_with_few_fds(parent) -> str:
    r = subprocess.run([sys.executable, "-c", UNDER_LIMIT, str(parent)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.parametrize("depth", [2000])
def test_a_deep_tree_goes_with_40_fds(tmp_path, depth):
    tree = tmp_path / "tree"
    tree.mkdir()
    make_deep(str(tree), depth)
    assert remove_with_few_fds(tmp_path) == "True"
    assert not tree.exists()


def test_a_wide_tree_goes_with_40_fds(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(5000):
        (tree / f"w{i}").mkdir()
        if i % 2:
            (tree / f"w{i}" / "x").write_text("x")
        if i % 7 == 0:
            os.chmod(tree / f"w{i}", 0o555)       # read-only: made writable first
    assert remove_with_few_fds(tmp_path) == "True"
    assert not tree.exists()


def test_deep_and_wide_below_the_window_never_follows_a_link_out(tmp_path):
    """Below the window of open directories the walk climbs through '..'
    and lists each directory afresh: symlinks still are unlinked, never
    followed, and every sibling goes."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    tree = tmp_path / "tree"
    tree.mkdir()
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(3 * removal._WINDOW):
            for j in range(20):
                os.mkdir(f"s{j}", dir_fd=fd)
                os.close(os.open(f"s{j}/f", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=fd))
            os.symlink(str(outside), "out", dir_fd=fd)
            sub = os.open("s0", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = sub
    finally:
        os.close(fd)
    assert remove_tree(str(tmp_path), "tree")
    assert not tree.exists()
    assert (outside / "keep").read_text() == "keep"


def test_a_directory_moved_out_mid_removal_is_not_climbed_out_of(tmp_path, monkeypatch):
    """Going up past the window, '..' must be the directory the walk came
    down through: one moved out of the tree meanwhile (here by a wrapper of
    the walk's step, as a concurrent `mv` would) stops the removal, and the
    directory it now sits in is untouched."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    (outside / "sub").mkdir()
    (outside / "sub" / "deeper").write_text("keep")
    tree = tmp_path / "tree"
    tree.mkdir()
    make_deep(str(tree), 4 * removal._WINDOW)
    step = removal._step
    calls = []

    def moving_step(dfd, listing, dev, mnt):
        calls.append(dfd)
        if len(calls) == 3 * removal._WINDOW:     # deep below the window
            os.rename(tree / "d" / "d", outside / "moved")
        return step(dfd, listing, dev, mnt)

    monkeypatch.setattr(removal, "_step", moving_step)
    assert not remove_tree(str(tmp_path), "tree")
    assert (outside / "precious").read_text() == "keep"
    assert (outside / "sub" / "deeper").read_text() == "keep"
    assert (tree / "d").is_dir(), "the tree is left, for the next sweep"


@pytest.mark.skipif(os.geteuid() != 0, reason="an immutable file (chattr +i) needs root")
def test_one_tree_that_cannot_go_never_stops_the_others(runx):
    """An immutable file in one stale tree: `runx gc` removes the ten others
    and the deep one, prints one line for it saying what to do, exits 1;
    the next gc, once the file can go, removes it."""
    trees = [stale_tree(runx.runtime, f"{i:012x}") for i in range(10)]
    deep = stale_tree(runx.runtime, "d" * 12)
    make_deep(deep, 2000)
    stuck = stale_tree(runx.runtime, "e" * 12)
    pinned = os.path.join(stuck, "bin", "python")
    subprocess.run(["chattr", "+i", pinned], check=True)
    try:
        r = runx.run("gc", local=False)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert not r.stderr, r.stderr
        lines = r.stdout.splitlines()
        assert sorted(line for line in lines if line.startswith("removed ")) == \
            sorted(f"removed {t}" for t in trees + [deep])
        (kept,) = [line for line in lines if not line.startswith("removed ")]
        assert kept.startswith(f"kept {stuck}: ") and "runx gc" in kept, kept
        assert os.path.exists(stuck + ".lock"), "a tree left keeps its lock file"
    finally:
        subprocess.run(["chattr", "-i", pinned], check=True)
    r = runx.run("gc", local=False)
    assert (r.returncode, r.stdout) == (0, f"removed {stuck}\n"), (r.returncode, r.stdout)


@pytest.mark.skipif(os.geteuid() != 0, reason="an immutable file (chattr +i) needs root")
def test_a_reaper_whose_tree_cannot_go_still_sweeps(runx):
    """The reaper's own tree cannot be removed: it still sweeps the stale
    trees beside it, and its own tree is left with its lock file, free, for
    the next sweep."""
    trees = [stale_tree(runx.runtime, f"{i:012x}") for i in range(3)]
    r = runx.run("--no-project", "sh", "-c",
                 'touch "$RUNX_ENV/pinned" && chattr +i "$RUNX_ENV/pinned" && echo "$RUNX_ENV"',
                 local=False)
    assert r.returncode == 0, r.stderr
    own = r.stdout.strip()
    try:
        wait_until(lambda: owners_gone(runx.runtime)
                   and not any(os.path.exists(t) for t in trees), 15,
                   "the reaper to sweep the stale trees")
        assert os.path.isdir(own) and os.path.exists(own + ".lock")
    finally:
        subprocess.run(["chattr", "-i", os.path.join(own, "pinned")], check=True)
    assert runx.run("gc", local=False).stdout == f"removed {own}\n"
