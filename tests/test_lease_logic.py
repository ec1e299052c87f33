"""The lease scan's logic on a fake /proc (``leases.PROC``), in process: who
holds a tree (RUNX_ENV in either spelling, cwd, exe, a mapped file; not a
tree whose name merely starts the same), zombies and kernel threads, and
when an empty answer is conclusive (docs/reliability.md, "Leases"). The end
to end proofs with real processes are in test_leases.py and
test_reliability.py; these run without root, FUSE or a process.
"""

import pytest

from runx_env.reaper import leases

pytestmark = pytest.mark.fast

PF_KTHREAD = 0x00200000


class FakeProc:
    """A directory laid out like /proc: ``PID/stat``, ``environ``, ``maps``,
    and ``cwd``/``exe`` as symbolic links."""

    def __init__(self, root):
        self.root = root
        root.mkdir()

    def add(self, pid: int, *, start: int = 1000, state: str = "S", env: dict | None = None,
            cwd: str = "/", exe: str = "/usr/bin/true", maps: list | None = None,
            kthread: bool = False, environ_readable: bool = True, env_span=None,
            tgid: int | None = None):
        """``env_span``: (env_start, env_end) in stat, and the environ is
        then empty: (0, 0) a process between the halves of an exec, (a, a)
        a real empty environment."""
        d = self.root / str(pid)
        if d.exists():
            self.remove(pid)
        d.mkdir()
        # Fields after "(comm) ": state is [0], flags [6], starttime [19],
        # env_start and env_end [47] and [48] (fields 50 and 51 of proc(5)).
        after = [state, "1", str(pid), str(pid), "0", "-1",
                 str(PF_KTHREAD if kthread else 0x400000)] + ["0"] * 12 + [str(start)] + ["0"] * 5
        if env_span is not None:
            after += ["0"] * (47 - len(after)) + [str(env_span[0]), str(env_span[1]), "0"]
        # A comm with a space and a parenthesis: the parser splits at the last ")".
        (d / "stat").write_text(f"{pid} (a (b) c) " + " ".join(after) + "\n")
        if env_span is not None:
            (d / "environ").write_bytes(b"")
        elif environ_readable:
            env = {"PATH": "/usr/bin", **(env or {})}
            (d / "environ").write_bytes(b"".join(f"{k}={v}".encode() + b"\0"
                                                 for k, v in env.items()))
        else:
            (d / "environ").mkdir()         # open() fails, as for another user's process
        (d / "cwd").symlink_to(cwd)
        (d / "exe").symlink_to(exe)
        lines = [] if kthread else ["55d0c0de0000-55d0c0de1000 r-xp 00000000 08:01 42 " + exe]
        lines += [f"7f0000000000-7f0000001000 r--p 00000000 08:01 43 {m}" for m in maps or ()]
        (d / "maps").write_text("".join(ln + "\n" for ln in lines))
        if tgid is not None:                # a thread's ID: /proc answers for it, unlisted
            (d / "status").write_text(f"Name:\tx\nUmask:\t0022\nState:\tS\nTgid:\t{tgid}\n")
        return pid

    def remove(self, pid: int):
        d = self.root / str(pid)
        for name in ("stat", "maps", "cwd", "exe"):
            (d / name).unlink()
        (d / "status").unlink(missing_ok=True)
        e = d / "environ"
        e.rmdir() if e.is_dir() else e.unlink()
        d.rmdir()


@pytest.fixture
def proc(tmp_path, monkeypatch):
    fake = FakeProc(tmp_path / "proc")
    monkeypatch.setattr(leases, "PROC", str(fake.root))
    monkeypatch.setattr(leases, "_PROC", True)
    # A fake process has no pidfd (its PID may be a real process's): its
    # identity is its start time alone (pidfs: tests/test_leases.py).
    monkeypatch.setattr(leases, "_PIDFS", False)
    return fake


@pytest.fixture
def trees(tmp_path):
    run = tmp_path / "run"
    (run / "tree-a" / "lib").mkdir(parents=True)
    (run / "tree-b").mkdir()
    (run / "tree-a2").mkdir()
    return str(run / "tree-a"), str(run / "tree-b"), str(run / "tree-a2")


def scan_until_sure(scan, tries=5):
    for _ in range(tries):
        found, sure = scan.once()
        if sure:
            return found
    pytest.fail("the scan never became conclusive")


def test_each_way_of_holding_a_tree_is_seen(proc, trees):
    a, b, a2 = trees
    proc.add(10, env={"RUNX_ENV": a})
    proc.add(11, cwd=a + "/lib")
    proc.add(12, exe=a + "/bin/python")
    proc.add(13, maps=[a + "/lib/libfoo.so (deleted)", "/usr/lib/libc.so.6"])
    proc.add(14, env={"RUNX_ENV": b}, cwd=a)                  # holds both
    proc.add(15, cwd=a2, env={"RUNX_ENV": a + "x"}, maps=[a2 + "/lib.so"])  # a prefix of a: no
    proc.add(16)                                              # nothing of ours
    found = scan_until_sure(leases.Scan([a, b]))
    assert sorted(found[a]) == [10, 11, 12, 13, 14]
    assert found[b] == [14]
    assert leases.holds(11, a) and not leases.holds(15, a) and not leases.holds(16, b)


def test_runx_env_matches_the_resolved_spelling_too(proc, tmp_path, trees):
    a = trees[0]
    link = tmp_path / "via-link"
    link.symlink_to(tmp_path / "run")
    spelled = str(link / "tree-a")
    proc.add(20, env={"RUNX_ENV": spelled})
    proc.add(21, cwd=a)                      # the kernel reports cwd resolved
    found = scan_until_sure(leases.Scan([spelled]))
    assert sorted(found[spelled]) == [20, 21]


def test_zombies_hold_nothing_and_are_certain_the_second_time(proc, trees):
    a = trees[0]
    proc.add(30, state="Z", env={"RUNX_ENV": a})
    scan = leases.Scan([a])
    found, sure = scan.once()
    # A zombie forks nothing more, but what it forked before it died is in
    # this listdir only if it died before it: certain from the next scan on.
    assert found == {} and not sure
    found, sure = scan.once()
    assert found == {} and sure


def test_a_pid_gone_before_its_check_makes_the_scan_inconclusive(proc, trees, monkeypatch):
    a = trees[0]
    proc.add(40, env={"RUNX_ENV": a})
    listed = leases._pids
    monkeypatch.setattr(leases, "_pids", lambda: listed() + [41])   # listed, then gone
    scan = leases.Scan([a])
    found, sure = scan.once()
    assert found == {a: [40]} and not sure
    monkeypatch.setattr(leases, "_pids", listed)
    assert scan.once() == ({a: [40]}, True)


def test_a_relay_holder_is_caught_by_the_next_scan(proc, trees, monkeypatch):
    """A holder forks its successor and exits: the scan that misses both
    is not conclusive, and the next sees the successor."""
    a = trees[0]
    proc.add(50, env={"RUNX_ENV": a})
    scan = leases.Scan([a])
    assert scan.once() == ({a: [50]}, True)
    # 50 exits after the listdir, 51 (its successor) appeared after it.
    proc.remove(50)
    monkeypatch.setattr(leases, "_pids", lambda: [50])
    found, sure = scan.once()
    assert found == {} and not sure
    monkeypatch.undo()
    monkeypatch.setattr(leases, "PROC", str(proc.root))
    monkeypatch.setattr(leases, "_PROC", True)
    monkeypatch.setattr(leases, "_PIDFS", False)
    proc.add(51, env={"RUNX_ENV": a})
    assert scan.once() == ({a: [51]}, True)


def test_a_reused_pid_is_a_new_process(proc, trees):
    a = trees[0]
    proc.add(60, start=500)
    scan = leases.Scan([a])
    assert scan.once() == ({}, True)
    proc.add(60, start=900, cwd=a)           # same PID, another start time
    assert scan.once() == ({a: [60]}, True)


def test_an_exiting_process_with_empty_maps_is_not_trusted(proc, trees):
    a = trees[0]
    proc.add(70)
    (proc.root / "70" / "maps").write_text("")          # memory gone, not a zombie yet
    found, sure = leases.Scan([a]).once()
    assert found == {} and not sure


def test_kernel_threads_map_nothing_and_are_trusted(proc, trees):
    a = trees[0]
    proc.add(2, kthread=True)
    assert leases.Scan([a]).once() == ({}, True)


def test_an_unreadable_environ_is_a_non_holder(proc, trees):
    a = trees[0]
    proc.add(80, environ_readable=False)
    proc.add(81, environ_readable=False, cwd=a)          # still seen by its cwd
    assert leases.Scan([a]).once() == ({a: [81]}, True)


def test_excluded_pids_and_retarget(proc, trees):
    a, b, _ = trees
    proc.add(90, env={"RUNX_ENV": a})
    proc.add(91, cwd=b)
    scan = leases.Scan([a], exclude={90})
    assert scan.once() == ({}, True)
    scan.retarget([b])
    assert scan.once() == ({b: [91]}, True)
    assert leases.holders(b) == [91]


# --- the shared scan's pieces (leases.Board; docs/reliability.md, "One scan
# for every waiting reaper")

def test_a_dying_process_casts_doubt_only_on_the_trees_it_could_hold(proc, trees):
    """A zombie first seen may have forked, before the listing, a successor
    that holds what it held: if an earlier scan knew it alive holding only b,
    only b is in doubt, and a scan seeking a alone is conclusive."""
    a, b, _ = trees
    proc.add(100, cwd=b)
    proc.add(101)
    scan = leases.Scan([a, b])
    assert scan.once() == ({b: [100]}, True)
    proc.add(100, state="Z")                 # same start: the same process, dead now
    seen = dict(scan.memo)
    assert scan.once() == ({}, False) and scan.unsure == {b}
    only_a = leases.Scan([a, b], targets=[a])
    only_a.memo = seen
    assert only_a.once() == ({}, True)
    unknown = leases.Scan([a, b], targets=[a])
    assert unknown.once() == ({}, False) and unknown.unsure is None, \
        "a zombie nobody knew may have held anything"


def test_a_process_known_free_of_the_targets_is_not_read_again(proc, trees, monkeypatch):
    """Only processes that held a target, or were not known, are read again:
    one known to hold b is not read by a scan for a."""
    a, b, _ = trees
    proc.add(110, cwd=b)
    proc.add(111)
    scan = leases.Scan([a, b])
    scan.once()
    read = []
    real = leases._proc_check
    monkeypatch.setattr(leases, "_proc_check",
                        lambda pid, m, ident: (read.append(pid), real(pid, m, ident))[1])
    for_a = leases.Scan([a, b], targets=[a])
    for_a.memo = dict(scan.memo)
    assert for_a.once() == ({}, True) and read == []
    for_b = leases.Scan([a, b], targets=[b])
    for_b.memo = dict(scan.memo)
    assert for_b.once() == ({b: [110]}, True) and read == [110]


def test_a_verdict_naming_an_unknown_tree_is_not_kept(proc, trees):
    """A shared scan's verdicts serve later scans of trees it did not know:
    a process that held a tree outside its set (a newer one) is remembered
    as not known, so that tree's scan reads it."""
    a, b, _ = trees
    c = a.rsplit("/", 1)[0] + "/tree-c"
    proc.add(120, env={"RUNX_ENV": c})
    shared = leases.Scan([a, b])
    shared.complete = True
    assert shared.once() == ({}, True)
    assert shared.memo[120][1] is None
    private = leases.Scan([a, b])
    private.once()
    assert private.memo[120][1] == frozenset(), "a private scan's verdict is about its set"


def test_the_waiting_reapers_are_not_counted(proc, trees):
    """The reapers a shared scan serves hold nothing of their trees (they
    wait for the scan): ``skip`` leaves them out, by PID and start time."""
    a = trees[0]
    proc.add(130, env={"RUNX_ENV": a}, start=777)
    scan = leases.Scan([a])
    scan.skip = frozenset({(130, 777)})
    assert scan.once() == ({}, True)
    scan.skip = frozenset({(130, 778)})      # another process with that PID
    assert scan.once() == ({a: [130]}, True)


def test_a_process_between_the_halves_of_an_exec_is_not_trusted(proc, trees):
    """From the switch to its new memory until the kernel has written the new
    stack's strings, a process's environ reads empty while its maps show
    the new stack: a holder through RUNX_ENV alone (a payload's child
    exec'ing) looked like a non-holder. Its stat shows no environment span
    then (0, 0): the scan is not conclusive. A real empty environment
    (env -i: a span, empty) is trusted; a stat without the fields (Linux <
    3.5) leaves the old reading."""
    a = trees[0]
    proc.add(140, env_span=(0, 0))
    scan = leases.Scan([a])
    assert scan.once() == ({}, False)
    assert scan.memo[140][1] is None and scan.memo[140][2] is False, \
        "remembered as dead or as holding nothing"
    proc.add(140, env={"RUNX_ENV": a})               # the exec done
    assert scan.once() == ({a: [140]}, True)
    proc.add(141, env_span=(0x7ffd1000, 0x7ffd1000))
    assert leases.Scan([a]).once() == ({a: [140]}, True)


def test_a_holder_that_let_go_casts_doubt_for_one_scan(proc, trees, monkeypatch):
    """A holder that lets go of a tree (chdir out, an exec clearing
    RUNX_ENV) after forking a child between the listing and its check: the
    child is not in that listing, so the scan that sees the holder let go is
    not conclusive for that tree; the next listing shows the child."""
    a, b, _ = trees
    proc.add(150, cwd=a)
    scan = leases.Scan([a, b])
    assert scan.once() == ({a: [150]}, True)
    proc.add(150, cwd="/")                       # let go, same process
    proc.add(151, cwd=a)                         # its child, forked before it let go
    monkeypatch.setattr(leases, "_pids", lambda: [150])   # ... after the listing
    assert scan.once() == ({}, False) and scan.unsure == {a}
    monkeypatch.undo()
    monkeypatch.setattr(leases, "PROC", str(proc.root))
    monkeypatch.setattr(leases, "_PROC", True)
    monkeypatch.setattr(leases, "_PIDFS", False)
    assert scan.once() == ({a: [151]}, True)
    assert scan.once() == ({a: [151]}, True), "the doubt lasts one scan"


# --- following the PID allocator (Scan._passes, leases._Cursor) ----------------

class FakeAllocator:
    """The kernel's PID cursor, fork count and task count, as the scan reads
    them: ``fork(pid)`` gives a PID; ``looks`` queues what the next reads of
    the cursor answer (then it stays at the last)."""

    def __init__(self, monkeypatch, last=49, forks=5000, tasks=40, pid_max=32768):
        self.last, self.forks, self.tasks, self.pid_max = last, forks, tasks, pid_max
        self.looks: list = []
        monkeypatch.setattr(leases, "_cursor_usable", lambda: True)
        monkeypatch.setattr(leases, "_last_pid", self._look)
        monkeypatch.setattr(leases, "_forks", lambda: self.forks)
        monkeypatch.setattr(leases, "_tasks", lambda: self.tasks)
        monkeypatch.setattr(leases, "_pid_max", lambda: self.pid_max)

    def _look(self):
        if self.looks:
            self.last = self.looks.pop(0)
        return self.last

    def fork(self, pid):
        self.last, self.forks = pid, self.forks + 1


def listing_then(monkeypatch, pids, after):
    """The next listing shows ``pids``; ``after`` runs once it was taken
    (what happened between the listdir and the reads)."""
    def listed():
        monkeypatch.setattr(leases, "_pids", lambda: pids)
        after()
        return pids
    monkeypatch.setattr(leases, "_pids", listed)


def test_a_relay_holder_is_caught_by_the_pass_after_the_listing(proc, trees, monkeypatch):
    """A holder forks its successor after the listdir and exits before its
    read: the successor's PID was given after the cursor's first look, and
    the pass over those PIDs reads it. The same scan is conclusive, and
    names the successor (the scan before this one needed a second scan)."""
    a = trees[0]
    alloc = FakeAllocator(monkeypatch)
    proc.add(50, env={"RUNX_ENV": a})
    alloc.fork(50)

    def relay():
        alloc.fork(51)
        proc.add(51, env={"RUNX_ENV": a})
        proc.remove(50)
    listing_then(monkeypatch, [50], relay)
    assert leases.Scan([a]).once() == ({a: [51]}, True)


def test_a_chain_of_relays_is_followed_pass_after_pass(proc, trees, monkeypatch):
    """The successor is gone too when its pass reads it, and forked its own
    after that pass's look at the cursor: the next pass reads that one."""
    a = trees[0]
    alloc = FakeAllocator(monkeypatch)
    proc.add(50, env={"RUNX_ENV": a})
    alloc.fork(50)
    real_visit_cursor = alloc._look
    calls = []

    def look():
        calls.append(1)
        if len(calls) == 2:                  # the first pass's look: 51 given, gone, 52 next
            alloc.fork(51)
            last = alloc.last
            alloc.fork(52)
            proc.add(52, cwd=a)
            return last
        return real_visit_cursor() if len(calls) != 3 else 52
    monkeypatch.setattr(leases, "_last_pid", look)
    listing_then(monkeypatch, [50], lambda: proc.remove(50))
    assert leases.Scan([a]).once() == ({a: [52]}, True)
    assert len(calls) == 4                   # first look, 51, 52, nothing more


def test_an_allocator_that_may_have_gone_round_is_not_followed(proc, trees, monkeypatch):
    """So many forks meanwhile that the allocator could have gone round
    (a PID given again unseen): the pass proves nothing, and a process that
    vanished before its read makes the scan inconclusive, as without the
    cursor."""
    a = trees[0]
    alloc = FakeAllocator(monkeypatch)
    proc.add(50)
    proc.add(51)

    def churn():
        proc.remove(50)
        alloc.forks += 7000                  # 5 x 7000 + 3 x 40 > 32768 - 300
        alloc.fork(51)
    listing_then(monkeypatch, [50], churn)
    assert leases.Scan([a]).once() == ({}, False)


def test_many_tasks_leave_too_few_free_pids_to_follow(proc, trees, monkeypatch):
    """Tasks fill the PID space (each may pin three PIDs): few forks could
    take the allocator round, so the pass is not trusted."""
    a = trees[0]
    alloc = FakeAllocator(monkeypatch, tasks=11000)
    proc.add(50)
    listing_then(monkeypatch, [50], lambda: proc.remove(50))
    assert leases.Scan([a]).once() == ({}, False)
    alloc.tasks = 100
    proc.add(50)
    listing_then(monkeypatch, [50], lambda: proc.remove(50))
    assert leases.Scan([a]).once() == ({}, True)


def test_a_pass_round_the_top_of_the_pid_space(proc, trees, monkeypatch):
    """The cursor went past pid_max and started again from the bottom: the
    pass reads the PIDs at the top, then those from 1."""
    a = trees[0]
    alloc = FakeAllocator(monkeypatch, last=32765, pid_max=32768)
    proc.add(32765)

    def relay():
        proc.remove(32765)
        alloc.fork(301)
        proc.add(301, cwd=a)
    listing_then(monkeypatch, [32765], relay)
    assert leases.Scan([a]).once() == ({a: [301]}, True)
    cursor = leases._Cursor(0, 0, 32768, 32765)
    alloc.looks = [2]
    assert cursor.advance() == [32766, 32767, 1, 2]


def test_pid_max_changed_during_the_scan_is_not_followed(proc, trees, monkeypatch):
    """pid_max raised while the passes ran: PIDs above the old one may have
    been given before the cursor went round, and no pass read them."""
    a = trees[0]
    alloc = FakeAllocator(monkeypatch)
    proc.add(50)

    def raise_pid_max():
        proc.remove(50)
        alloc.fork(51)
        alloc.pid_max = 65536
    listing_then(monkeypatch, [50], raise_pid_max)
    assert leases.Scan([a]).once() == ({}, False)


def test_too_long_a_pass_gives_up(proc, trees, monkeypatch):
    a = trees[0]
    alloc = FakeAllocator(monkeypatch)
    proc.add(50)

    def burst():
        proc.remove(50)
        alloc.last += leases._PASS_MAX + 1
    listing_then(monkeypatch, [50], burst)
    assert leases.Scan([a]).once() == ({}, False)


def test_a_pass_skips_threads_and_what_the_listing_read(proc, trees, monkeypatch):
    """A PID given since the first look may be a thread's (its process is
    read under its own PID) or a process the listing showed and the scan
    read already: neither is read again."""
    a = trees[0]
    alloc = FakeAllocator(monkeypatch)
    proc.add(50)
    reads = []
    real = leases._check
    monkeypatch.setattr(leases, "_check", lambda pid, *a_, **k: (reads.append(pid),
                                                                   real(pid, *a_, **k))[1])

    def later():
        proc.remove(50)
        alloc.fork(51)
        proc.add(51)                          # listed below, read by the listing's loop
        alloc.fork(52)
        proc.add(52, env={"RUNX_ENV": a}, tgid=51)   # a thread of 51
    listing_then(monkeypatch, [50, 51], later)
    assert leases.Scan([a]).once() == ({}, True)
    assert sorted(reads) == [51]


def test_a_holder_that_let_go_leaves_its_successor_to_the_pass(proc, trees, monkeypatch):
    """A holder (known from the last scan) forked a successor after the
    listdir and then let go (chdir out): the pass reads the successor."""
    a = trees[0]
    alloc = FakeAllocator(monkeypatch)
    proc.add(50, cwd=a)
    scan = leases.Scan([a])
    assert scan.once() == ({a: [50]}, True)

    def let_go():
        alloc.fork(51)
        proc.add(51, cwd=a)
        proc.add(50, cwd="/")                 # same start time: the same process
    listing_then(monkeypatch, [50], let_go)
    assert scan.once() == ({a: [51]}, True)

