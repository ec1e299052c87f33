"""``removal.remove_tree`` on a temporary tree, in process (the fast tier):
nested and read-only directories are emptied, nothing outside the tree is
followed or changed (symbolic links out, to the parent, in a loop; a hard
link to a file outside; a non-directory where the tree was). Mounts inside
a tree need root: test_removal.py and test_reliability.py.
"""

import os
import socket
import stat

import pytest

from runx_env.reaper.removal import remove_tree, why_kept

pytestmark = pytest.mark.fast


@pytest.fixture
def outside(tmp_path):
    d = tmp_path / "outside"
    (d / "sub").mkdir(parents=True)
    (d / "keep.txt").write_text("keep")
    (d / "sub" / "deep.txt").write_text("deep")
    os.chmod(d / "sub", 0o555)
    yield d
    os.chmod(d / "sub", 0o755)


def snapshot(root) -> dict:
    """Every path under ``root`` with its mode and content (or link target)."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            body = os.readlink(p) if stat.S_ISLNK(st.st_mode) else (
                open(p, "rb").read() if stat.S_ISREG(st.st_mode) else None)
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_nlink, body)
    return out


def test_nested_read_only_directories_and_files_are_removed(tmp_path):
    t = tmp_path / "tree"
    d = t
    for i in range(40):
        d = d / f"level{i}"
        d.mkdir(parents=True)
        (d / "file").write_text(str(i))
        os.chmod(d / "file", 0o444)
    dirs = sorted((p for p in t.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    for p in dirs[::3]:
        os.chmod(p, 0o555)                   # read-only at several depths, the deepest too
    os.chmod(t, 0o500)                       # and the tree itself
    assert remove_tree(str(tmp_path), "tree")
    assert os.listdir(tmp_path) == []


def test_links_out_of_the_tree_are_unlinked_never_followed(tmp_path, outside):
    before = snapshot(outside)
    t = tmp_path / "tree"
    (t / "a" / "b").mkdir(parents=True)
    (t / "to-outside").symlink_to(outside)
    (t / "a" / "to-sub").symlink_to(outside / "sub")
    (t / "a" / "b" / "to-file").symlink_to(outside / "keep.txt")
    (t / "a" / "to-parent").symlink_to("..")
    (t / "a" / "b" / "to-grandparent").symlink_to("../../..")
    (t / "loop1").symlink_to("loop2")
    (t / "loop2").symlink_to("loop1")
    (t / "dangling").symlink_to("/nonexistent/x")
    os.link(outside / "keep.txt", t / "a" / "hardlink")   # same inode as keep.txt
    os.chmod(t / "a", 0o555)
    assert remove_tree(str(tmp_path), "tree")
    assert not t.exists() and not os.path.lexists(t)
    assert snapshot(outside) == before                     # nlink back to 1, modes as they were
    assert os.stat(outside / "keep.txt").st_nlink == 1


def test_special_files_and_odd_names_are_removed(tmp_path, monkeypatch):
    t = tmp_path / "tree"
    t.mkdir()
    os.mkfifo(t / "fifo")
    s = socket.socket(socket.AF_UNIX)
    monkeypatch.chdir(t)            # bound by a relative name: a deep basetemp (the suite run
    try:                            # from an unpacked sdist) exceeds sun_path's 108 bytes
        s.bind("sock")
    finally:
        s.close()
    monkeypatch.undo()
    for name in (b"new\nline", b"\xff\xfe not utf-8", b" lead", b"-dash", b"..."):
        with open(os.path.join(os.fsencode(t), name), "wb") as f:
            f.write(b"x")
    assert remove_tree(str(tmp_path), "tree")
    assert os.listdir(tmp_path) == []


def test_a_file_or_link_where_the_tree_was_is_left_alone(tmp_path, outside):
    (tmp_path / "file").write_text("not a tree")
    (tmp_path / "link").symlink_to(outside)
    assert not remove_tree(str(tmp_path), "file")
    assert not remove_tree(str(tmp_path), "link")
    assert (tmp_path / "file").read_text() == "not a tree"
    assert (tmp_path / "link").is_symlink() and (outside / "keep.txt").exists()
    assert "not a directory any more" in why_kept(str(tmp_path), "file")
    assert remove_tree(str(tmp_path), "never-was")          # already gone: done


def test_the_expected_inode_is_checked(tmp_path):
    (tmp_path / "tree").mkdir()
    st = os.stat(tmp_path / "tree")
    assert not remove_tree(str(tmp_path), "tree", expect=(st.st_dev, st.st_ino + 1))
    assert (tmp_path / "tree").is_dir()
    assert remove_tree(str(tmp_path), "tree", expect=(st.st_dev, st.st_ino))
    assert not (tmp_path / "tree").exists()


def test_the_mount_table_as_removal_and_the_sweep_read_it():
    from runx_env.reaper import removal, sweep

    table = removal.mounts()
    assert table is not None and any(mp == b"/proc" and kind == b"proc" for mp, _, _, kind in table)
    assert all(isinstance(field, bytes) for entry in table for field in entry)
    line = (b"36 35 98:0 /mnt\\040x /a\\040b rw,noatime master:1 - ext3 /dev/root rw\n"
            b"37 35 0:52 / /run/user/0 rw shared:2 - tmpfs tmpfs rw\n")
    assert removal.parse_mountinfo(line) == [(b"/a b", b"/mnt x", b"98:0", b"ext3"),
                                            (b"/run/user/0", b"/", b"0:52", b"tmpfs")]
    assert "/proc" in removal.mounts_under("/proc")
    assert sweep._fuse_mountpoint("/proc") is False
