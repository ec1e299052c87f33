"""Nothing leaks, nothing outside: a tree is owned by its lock (never
swept while held), removal never follows a symlink out of the tree, stale
trees are swept, and `runx gc`/`ls` report and remove what dead runs left."""

import fcntl
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import alive, live_run, owners_gone, the_reaper, wait_until
from runx_env.reaper import leases
from runx_env.reaper.removal import remove_tree
from runx_env.reaper.sweep import sweep


# --- removal never leaves the tree ---------------------------------------------

@pytest.fixture
def outside(tmp_path):
    """A directory and a file that no removal may touch."""
    d = tmp_path / "precious"
    d.mkdir()
    (d / "keep.txt").write_text("keep")
    return d


def make_tree(root, name="tree"):
    t = root / name
    (t / "bin").mkdir(parents=True)
    (t / "bin" / "x").write_text("x")
    return t


@pytest.mark.fast
def test_removal_unlinks_symlinks_never_follows_them(tmp_path, outside):
    t = make_tree(tmp_path)
    (t / "link-to-dir").symlink_to(outside)
    (t / "bin" / "link-to-file").symlink_to(outside / "keep.txt")
    assert remove_tree(str(tmp_path), "tree")
    assert not t.exists()
    assert (outside / "keep.txt").read_text() == "keep"


@pytest.mark.fast
def test_tree_swapped_for_a_symlink_is_left_alone(tmp_path, outside):
    t = make_tree(tmp_path)
    st = os.stat(t)
    os.rename(t, tmp_path / "moved")
    (tmp_path / "tree").symlink_to(outside)
    assert not remove_tree(str(tmp_path), "tree", expect=(st.st_dev, st.st_ino))
    assert (outside / "keep.txt").exists() and (tmp_path / "tree").is_symlink()


@pytest.mark.fast
def test_tree_swapped_for_another_directory_is_left_alone(tmp_path):
    t = make_tree(tmp_path)
    st = os.stat(t)
    os.rename(t, tmp_path / "moved")
    other = make_tree(tmp_path)      # same name, another inode
    assert not remove_tree(str(tmp_path), "tree", expect=(st.st_dev, st.st_ino))
    assert (other / "bin" / "x").exists()


@pytest.mark.fast
def test_read_only_directories_are_removed(tmp_path):
    t = make_tree(tmp_path)
    os.chmod(t / "bin", 0o555)
    os.chmod(t, 0o555)
    assert remove_tree(str(tmp_path), "tree")
    assert not t.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_removal_does_not_cross_a_mount_point(tmp_path):
    t = make_tree(tmp_path)
    mnt = t / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mnt)], check=True)
    try:
        (mnt / "other-fs.txt").write_text("x")
        remove_tree(str(tmp_path), "tree")
        assert (mnt / "other-fs.txt").exists(), "removal entered another filesystem"
    finally:
        subprocess.run(["umount", "-l", str(mnt)])
    assert remove_tree(str(tmp_path), "tree")


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_trees_of_another_user_are_not_touched(tmp_path):
    t = make_tree(tmp_path)
    os.chown(t, 65534, 65534)
    assert not remove_tree(str(tmp_path), "tree")
    assert (t / "bin" / "x").exists()


# --- leases --------------------------------------------------------------------

def test_lease_by_environment_variable(tmp_path):
    t = make_tree(tmp_path)
    env = dict(os.environ, RUNX_ENV=str(t))
    p = subprocess.Popen(["sleep", "30"], env=env)
    try:
        assert p.pid in leases.holders(str(t))
        assert p.pid not in leases.holders(str(t) + "-other"), "prefix must not match"
    finally:
        p.kill()
        p.wait()
    assert p.pid not in leases.holders(str(t))


def test_lease_by_cwd_and_by_mapped_file(tmp_path):
    t = make_tree(tmp_path)
    p = subprocess.Popen(["sleep", "30"], cwd=t / "bin")
    data = t / "data.bin"
    data.write_bytes(b"\0" * 4096)
    mapper = subprocess.Popen(
        [sys.executable, "-c", "import mmap, sys, time; f = open(sys.argv[1], 'rb'); "
         "m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ); f.close(); "
         "print('mapped', flush=True); time.sleep(30)", str(data)],
        stdout=subprocess.PIPE, text=True, cwd="/")
    try:
        assert mapper.stdout.readline() == "mapped\n"
        held = leases.holders(str(t))
        assert p.pid in held, "a process whose cwd is in the tree holds it"
        assert mapper.pid in held, "a process with a file of the tree mapped holds it"
    finally:
        for q in (p, mapper):
            q.kill()
            q.wait()


def test_zombie_holds_nothing(tmp_path):
    t = make_tree(tmp_path)
    p = subprocess.Popen(["true"], env=dict(os.environ, RUNX_ENV=str(t)))
    wait_until(lambda: open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z",
               10, "the child to become a zombie")
    assert p.pid not in leases.holders(str(t))
    p.wait()


# --- ownership and sweep -------------------------------------------------------

def test_live_tree_is_never_swept_and_stale_one_is(runx):
    with live_run(runx):
        (live,) = runx.trees()
        # A stale tree: a lock file nobody holds, its tree, no user.
        stale = os.path.join(runx.runtime, "0123456789ab")
        os.mkdir(stale)
        with open(stale + ".lock", "w") as f:
            json.dump({"tree": stale}, f)
        removed = sweep(runx.runtime)
        assert removed == [stale]
        assert runx.trees() == [live], "a tree whose lock is held must survive any sweep"
    runx.wait_clean()


def test_sweep_leaves_foreign_entries_alone(runx):
    os.makedirs(runx.runtime, exist_ok=True)
    foreign = os.path.join(runx.runtime, "not-ours")
    os.mkdir(foreign)
    try:
        sweep(runx.runtime)
        assert os.path.isdir(foreign), "a directory without a runx lock is not runx's"
    finally:
        os.rmdir(foreign)


def test_lock_held_means_owned(runx, tmp_path):
    """A lock file whose flock is held by anyone is not swept, whatever its PID says."""
    os.makedirs(runx.runtime, exist_ok=True)
    tree = os.path.join(runx.runtime, "aaaaaaaaaaaa")
    os.mkdir(tree)
    fd = os.open(tree + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    os.write(fd, json.dumps({"pid": 999999999}).encode())   # a dead PID: irrelevant
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert sweep(runx.runtime) == []
        assert os.path.isdir(tree)
    finally:
        os.close(fd)       # the "owner" dies: the kernel releases the lock
    assert sweep(runx.runtime) == [tree]
    assert not os.path.exists(tree) and not os.path.exists(tree + ".lock")


def test_gc_dry_run_and_ls(runx):
    with live_run(runx) as p:
        reaper = the_reaper(runx.runtime)
        r = runx.run("ls", local=False)
        assert r.returncode == 0
        header, row = r.stdout.splitlines()
        assert header.split() == ["TREE", "PID", "STATE", "SIZE"]
        assert row.split()[1:3] == [str(p.pid), "running"]
        os.kill(reaper, signal.SIGKILL)
        wait_until(lambda: not alive(reaper), 10, "the reaper to die")
        r = runx.run("ls", local=False)
        assert "stale, used by 1 process" in r.stdout, r.stdout
        r = runx.run("gc", "--dry-run", local=False)
        assert r.stdout.strip() == "nothing to remove", "a tree in use is not garbage"
    r = runx.run("gc", "--dry-run", local=False)
    assert r.stdout.startswith("would remove "), r.stdout
    assert runx.trees(), "--dry-run removes nothing"
    r = runx.run("gc", local=False)
    assert r.stdout.startswith("removed ")
    runx.wait_clean()


def test_keep_leaves_the_tree_and_gc_kept_removes_it(runx):
    r = runx.run("--keep", "python", "-c", "import os; print(os.environ['RUNX_ENV'])")
    tree = r.stdout.strip()
    assert f"runx: keeping {tree}" in r.stderr
    wait_until(lambda: owners_gone(runx.runtime), 10, "the reaper to exit")
    assert os.path.isdir(os.path.join(tree, "bin")), "--keep leaves the tree"
    assert runx.run("gc", local=False).stdout.strip() == "nothing to remove", \
        "plain gc leaves kept trees alone"
    assert runx.run("gc", "--kept", local=False).stdout.strip() == f"removed {tree}"
    runx.wait_clean()


def test_the_sweep_skips_locks_that_proc_locks_shows_held(tmp_path, monkeypatch):
    """At 128 runs at once each reaper's sweep opened and flocked every
    other run's lock; /proc/locks now filters the held ones out first (a
    filter only: what it lets through is still taken with try_lock)."""
    from runx_env.reaper import ownership

    runtime = tmp_path / "run"
    runtime.mkdir()
    for t in ("held", "free"):
        (runtime / f"{t}.lock").write_bytes(b"")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys; f = open(sys.argv[1], 'rb+'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
         str(runtime / "held.lock")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        st = os.stat(runtime / "held.lock")
        assert (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino) in ownership.held_flocks()
        assert [t for t, _ in ownership.owned_locks(str(runtime))] == ["free", "held"]
        assert [t for t, _ in ownership.owned_locks(str(runtime), skip_held=True)] == ["free"]
        opened = []
        real = ownership.try_lock
        monkeypatch.setattr(ownership, "try_lock", lambda p, **kw: (opened.append(p), real(p, **kw))[1])
        from runx_env.reaper.sweep import sweep

        sweep(str(runtime))
        assert opened and all(p.endswith("free.lock") for p in opened), opened
        assert not (runtime / "free.lock").exists(), "a lock without its tree is swept"
        assert (runtime / "held.lock").exists()
        # Unreadable or garbled, the filter lets everything through.
        bad = tmp_path / "locks"
        bad.write_bytes(b"1: FLOCK  ADVISORY  WRITE 1 zz:yy:nope 0 EOF\n2: -> FLOCK x\n")
        monkeypatch.setattr(ownership, "LOCKS", str(bad))
        assert ownership.held_flocks() == set()
        monkeypatch.setattr(ownership, "LOCKS", str(tmp_path / "missing"))
        assert [t for t, _ in ownership.owned_locks(str(runtime), skip_held=True)] == ["held"]
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)


def _fake_runs(runtime, n):
    """n tree + lock pairs, held by nobody: what sweep_due counts as live runs."""
    os.makedirs(os.path.join(runtime, ".scan"), mode=0o700, exist_ok=True)
    for i in range(n):
        os.mkdir(os.path.join(runtime, f"fake{i:08d}"))
        open(os.path.join(runtime, f"fake{i:08d}.lock"), "w").close()


def test_one_sweep_serves_a_burst_of_reapers(tmp_path):
    """With more than SWEEP_FROM runs live, a reaper whose neighbour began a
    sweep less than SWEEP_EVERY ago does not sweep again; with few runs
    live every reaper sweeps; a stamp from the future (a clock set back)
    or an old one does not hold a sweep back."""
    from runx_env.reaper import sweep as sweep_mod

    runtime = str(tmp_path / "run")
    os.makedirs(runtime, mode=0o700)
    _fake_runs(runtime, sweep_mod.SWEEP_FROM)
    assert sweep_mod.sweep_due(runtime) and sweep_mod.sweep_due(runtime), "few runs: every reaper"
    for i in range(sweep_mod.SWEEP_FROM, sweep_mod.SWEEP_FROM + 4):
        os.mkdir(os.path.join(runtime, f"more{i:08d}"))
        open(os.path.join(runtime, f"more{i:08d}.lock"), "w").close()
    assert not sweep_mod.sweep_due(runtime), "a second sweep a moment after the first"
    stamp = os.path.join(runtime, ".scan", "swept")
    now = time.time()
    os.utime(stamp, (now + 3600, now + 3600))
    assert sweep_mod.sweep_due(runtime), "a stamp from the future"
    assert not sweep_mod.sweep_due(runtime)
    os.utime(stamp, (now - 2 * sweep_mod.SWEEP_EVERY,) * 2)
    assert sweep_mod.sweep_due(runtime), "a stamp older than SWEEP_EVERY"


def test_a_tree_left_during_a_burst_goes_with_the_burst(runx, tmp_path):
    """A stale tree (its reaper killed) that appears while many runs are
    live, when their reapers' sweeps are thinned out, is removed by the time
    the burst's last reaper is done: the last runs always sweep."""
    from runx_env.reaper import sweep as sweep_mod

    gate = str(tmp_path / "gate")
    n = sweep_mod.SWEEP_FROM * 3
    procs = [runx.popen("--with", "runxdemo", "python", "-c",
                        "import os, sys, time\n"
                        "while not os.path.exists(sys.argv[1]): time.sleep(0.01)\n", gate)
             for _ in range(n)]
    try:
        wait_until(lambda: len(runx.trees()) == n, 60, "every run live")
        stale = os.path.join(runx.runtime, "0123456789ab")
        os.mkdir(stale)
        with open(stale + ".lock", "w") as f:
            json.dump({"tree": stale}, f)
        open(gate, "w").close()
        assert [p.wait(timeout=60) for p in procs] == [0] * n
        runx.wait_clean(30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
