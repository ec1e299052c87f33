"""Nothing outside: removal never enters a mount inside a tree.

A bind mount of a directory of the same file system has the same st_dev as
the tree: the removal must see it by mount id, leave the tree (lock file
kept, so it stays runx's) and `runx gc` must say why. Real bind mounts, as
root; every mount is undone in teardown.
"""

import os
import subprocess

import pytest

from conftest import owners_gone, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")


def mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


@pytest.fixture
def mounts():
    """Mount points made by the test; unmounted (lazily, innermost first) at teardown."""
    made: list = []
    yield made
    for mp in reversed(made):
        while mounted(mp):
            subprocess.run(["umount", "-l", mp], check=False)


def outside_dir(tmp_path) -> str:
    d = tmp_path / "outside"
    d.mkdir()
    (d / "precious").write_text("keep me")
    (d / "sub").mkdir()
    (d / "sub" / "deeper").write_text("me too")
    return str(d)


def run_and_mount(runx, mounts, target: str, source: str, kind: str) -> str:
    """A payload that bind-mounts ``source`` at ``$RUNX_ENV/target`` and exits."""
    prep = f'mkdir "$RUNX_ENV/{target}"' if kind == "dir" else f': > "$RUNX_ENV/{target}"'
    script = f'{prep} && mount --bind "{source}" "$RUNX_ENV/{target}" && echo "$RUNX_ENV"'
    r = runx.run("--no-project", "sh", "-c", script, local=False)
    assert r.returncode == 0, r.stderr
    tree = r.stdout.strip()
    mounts.append(os.path.join(tree, target))
    # The reaper tried, refused, and is gone: no fixed sleep, its exit (the
    # tree's lock coming free) is the signal. Not "no runx-reaper process":
    # right after the payload exits the reaper may not have named itself yet.
    wait_until(lambda: owners_gone(runx.runtime), 15, "the reaper to exit")
    return tree


@pytest.mark.parametrize("kind", ["dir", "file"])
def test_reaper_never_enters_a_bind_mount(runx, tmp_path, mounts, kind):
    out = outside_dir(tmp_path)
    source = out if kind == "dir" else os.path.join(out, "precious")
    tree = run_and_mount(runx, mounts, "bm", source, kind)
    assert os.path.exists(os.path.join(out, "precious"))
    assert open(os.path.join(out, "sub", "deeper")).read() == "me too"
    assert os.path.isdir(tree), "the tree with a mount inside must be left whole"
    assert os.path.exists(tree + ".lock"), "its lock file keeps it runx's"

    mp = os.path.join(tree, "bm")
    dry = runx.run("gc", "--dry-run", local=False)
    assert dry.returncode == 0, dry.stderr
    assert f"would keep {tree}: {mp} is a mount point (umount it, then runx gc)" in dry.stdout
    assert "would remove" not in dry.stdout, "a dry run must not promise what gc will not do"
    gc = runx.run("gc", local=False)
    assert gc.returncode == 1, "a tree left needs a person: gc exits 1"
    assert f"kept {tree}: {mp} is a mount point (umount it, then runx gc)" in gc.stdout
    assert "nothing to remove" not in gc.stdout
    assert os.path.exists(os.path.join(out, "precious"))
    assert os.path.isdir(os.path.join(out, "sub"))

    subprocess.run(["umount", mp], check=True)
    gc = runx.run("gc", local=False)
    assert gc.returncode == 0, gc.stderr
    assert f"removed {tree}" in gc.stdout
    assert not os.path.exists(tree) and not os.path.exists(tree + ".lock")
    assert open(os.path.join(out, "precious")).read() == "keep me"
    assert open(os.path.join(out, "sub", "deeper")).read() == "me too"


def test_nested_bind_mount_deep_in_the_tree(runx, tmp_path, mounts):
    out = outside_dir(tmp_path)
    r = runx.run("--no-project", "sh", "-c", f'mkdir -p "$RUNX_ENV/a/b/c" && mount --bind "{out}" '
                 f'"$RUNX_ENV/a/b/c" && echo "$RUNX_ENV"', local=False)
    assert r.returncode == 0, r.stderr
    tree = r.stdout.strip()
    mounts.append(os.path.join(tree, "a/b/c"))
    wait_until(lambda: owners_gone(runx.runtime), 15, "the reaper to exit")
    assert sorted(os.listdir(out)) == ["precious", "sub"]
    subprocess.run(["umount", os.path.join(tree, "a/b/c")], check=True)
    assert "removed " + tree in runx.run("gc", local=False).stdout


def test_clear_checks_mount_ids_even_for_a_mount_made_after_the_scan(tmp_path, mounts):
    """A bind mount that appears after mountinfo was read is still not
    entered: every directory opened must carry the tree's mount id."""
    from runx_env.reaper import removal

    out = outside_dir(tmp_path)
    tree = tmp_path / "tree"
    (tree / "x" / "bm").mkdir(parents=True)
    (tree / "x" / "file").write_text("tree's own")
    subprocess.run(["mount", "--bind", out, str(tree / "x" / "bm")], check=True)
    mounts.append(str(tree / "x" / "bm"))
    real = removal.mounts_under
    removal.mounts_under = lambda path: []     # the scan ran before the mount appeared
    try:
        assert removal.remove_tree(str(tmp_path), "tree") is False
    finally:
        removal.mounts_under = real
    assert sorted(os.listdir(out)) == ["precious", "sub"]
    assert not (tree / "x" / "file").exists()      # the tree's own content did go
    subprocess.run(["umount", str(tree / "x" / "bm")], check=True)
    assert removal.remove_tree(str(tmp_path), "tree") is True
    assert not tree.exists()


def test_tree_itself_bind_mounted_over(runx, tmp_path, mounts):
    """`mount --bind /some/dir $RUNX_ENV`: the tree's path now shows another
    directory (same st_dev); neither the reaper nor gc may empty it."""
    out = outside_dir(tmp_path)
    r = runx.run("--no-project", "sh", "-c", f'mount --bind "{out}" "$RUNX_ENV" && echo "$RUNX_ENV"',
                 local=False)
    assert r.returncode == 0, r.stderr
    tree = r.stdout.strip()
    mounts.append(tree)
    wait_until(lambda: owners_gone(runx.runtime), 15, "the reaper to exit")
    gc = runx.run("gc", local=False)
    assert f"kept {tree}: {tree} is a mount point (umount it, then runx gc)" in gc.stdout
    assert sorted(os.listdir(out)) == ["precious", "sub"]
    subprocess.run(["umount", tree], check=True)
    assert "removed " + tree in runx.run("gc", local=False).stdout
    assert sorted(os.listdir(out)) == ["precious", "sub"]
