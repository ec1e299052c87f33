"""A run's environment is a complete venv. Everything a package installs under its
prefix (share/, etc/, include/, any .data/data entry) is under the run's
sys.prefix; console scripts named *.py run by name; ``runx -`` runs a script
from stdin; the tree has activate scripts; ``runx --with X`` alone lists the
environment's commands; what a run writes stays in its tree.

The tests marked ``pypi`` use real packages (jupyterlab, nbconvert, pip)
from PyPI; their layers are built once per session (the session's cache).
"""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request

import pytest

from conftest import RUNX, build_wheel, runtime_entries, wait_until

FUSE = pytest.param("fuse", id="fuse")
MODES = ["dir", FUSE]

DATA = {
    "share/datademo/templates/page.txt": "template\n",
    "share/datademo/big/blob.bin": "x" * 10000,
    "share/man/man1/datademo.1": ".TH DATADEMO 1\n",
    "share/applications/datademo.desktop": "[Desktop Entry]\nName=datademo\n",
    "etc/datademo/conf.d/on.json": '{"on": true}\n',
    "include/datademo/datademo.h": "#define DATADEMO 1\n",
    "odd/top/level/entry/deep.txt": "deep\n",
}
TOOL = "import sys\n\ndef main():\n    print('tool.py ran', sys.argv[1:])\n    return 0\n"


@pytest.fixture(scope="module")
def wheels(wheelhouse):
    """datademo (data files, and a console script named tool.py) next to runxdemo."""
    build_wheel(wheelhouse, "datademo", "1.0", files={"datademo/__init__.py": TOOL},
                scripts={"tool.py": "datademo:main", "datademo": "datademo:main"}, data=DATA)
    return wheelhouse


def _env(runx, tmp_path, **more):
    """The test's environment, with Jupyter's per-user directories in tmp."""
    env = dict(runx.env)
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        env[var] = str(tmp_path / var.lower())
    env.update(more)
    return env


# --- the prefix: data files of any wheel ------------------------------------

READ_DATA = """\
import json, os, sys
out = {}
for rel in json.loads(sys.argv[1]):
    with open(os.path.join(sys.prefix, rel)) as f:
        out[rel] = f.read()
print(json.dumps(out))
"""


@pytest.mark.parametrize("mode", MODES)
def test_data_files_are_under_sys_prefix(runx, wheels, mode):
    r = runx.run("--tree", mode, "--with", "datademo", "python", "-c", READ_DATA,
                 json.dumps(list(DATA)))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == DATA


ADD_FILES = """\
import os, sys
p = sys.prefix
# Directories a package adds to (share/man/man1, etc/<pkg>/conf.d) are the tree's own:
for rel in ("share/man/man1/mine.1", "etc/datademo/conf.d/mine.json", "share/mine.txt"):
    with open(os.path.join(p, rel), "w") as f:
        f.write("mine")
# A small config file is the tree's copy: rewriting it leaves the layer's alone.
with open(os.path.join(p, "etc/datademo/conf.d/on.json"), "w") as f:
    f.write('{"on": false}')
print(p)
"""


@pytest.mark.parametrize("mode", MODES)
def test_payload_writes_stay_in_the_tree(runx, wheels, mode):
    r = runx.run("--tree", mode, "--with", "datademo", "python", "-c", ADD_FILES)
    assert r.returncode == 0, r.stderr
    tree = r.stdout.strip()
    runx.wait_clean()
    assert not os.path.exists(tree)
    code = ("import os, sys; p = sys.prefix; print(open(os.path.join(p, "
            "'etc/datademo/conf.d/on.json')).read().strip()); print(sorted(os.listdir("
            "os.path.join(p, 'share/man/man1'))))")
    r = runx.run("--tree", mode, "--with", "datademo", "python", "-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ['{"on": true}', "['datademo.1']"]
    layer = _layer_of(runx, ["datademo"])
    assert not os.path.exists(os.path.join(layer, "share/mine.txt"))
    assert not os.path.exists(os.path.join(layer, "share/man/man1/mine.1"))


def _layer_of(runx, requirements) -> str:
    root = os.path.join(runx.cache, "layers")
    for k in os.listdir(root):
        m = os.path.join(root, k, "current", "runx-layer.json")
        if os.path.exists(m):
            with open(m) as f:
                if json.load(f)["requirements"] == requirements:
                    return os.path.realpath(os.path.join(root, k, "current"))
    raise AssertionError(f"no layer for {requirements}")


# --- console scripts named *.py ---------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_console_script_named_py_runs_by_name(runx, wheels, mode):
    for args in (["tool.py", "a", "-b"], ["--", "tool.py", "a", "-b"]):
        r = runx.run("--tree", mode, "--with", "datademo", *args)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "tool.py ran ['a', '-b']\n"


def test_missing_py_is_still_no_such_file(runx, wheels):
    for args in (["nothere.py"], ["--with", "datademo", "nothere.py"], ["./nothere.py"]):
        r = runx.run(*args)
        assert r.returncode == 2, r.stderr
        assert r.stderr == "runx: error: script nothere.py: no such file (check the path)\n" \
            or r.stderr == "runx: error: script ./nothere.py: no such file (check the path)\n"


# --- runx - -------------------------------------------------------------------

STDIN_SCRIPT = """\
# /// script
# dependencies = ["runxdemo"]
# ///
import os, sys, runxdemo
print(os.getpid(), runxdemo.VERSION, sys.argv, repr(sys.stdin.read()), sys.prefix)
"""


@pytest.mark.parametrize("mode", MODES)
def test_script_from_stdin(runx, mode):
    p = runx.popen("--tree", mode, "-", "a", "--b", stdin=subprocess.PIPE,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(STDIN_SCRIPT, timeout=120)
    assert p.returncode == 0, err
    pid, version, rest = out.split(" ", 2)
    assert int(pid) == p.pid, "the script runs in runx's own process (exec)"
    assert version == "1.0"
    # As `uv run -`: python -c TEXT ARG..., stdin consumed as the script.
    assert rest.startswith("['-c', 'a', '--b'] '' ")
    assert rest.split()[-1].startswith(runx.runtime)


def test_script_from_stdin_errors(runx):
    r = runx.run("-", input="# /// script\n# dependencies = 3\n# ///\n")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("runx: error: <stdin>: 'dependencies'")
    r = runx.run("-", input="print('x')\0\n")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "NUL byte" in r.stderr
    r = runx.run("-", input="#" * 200_000)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "save it to a file" in r.stderr


# --- activate -------------------------------------------------------------------

ACTIVATE = """\
set -e
tree="$RUNX_ENV"
unset VIRTUAL_ENV
PATH=/usr/bin:/bin
. "$tree/bin/activate"
echo "$VIRTUAL_ENV"
command -v python
python -c 'import sys, runxdemo; print(sys.prefix)'
deactivate
echo "after:${VIRTUAL_ENV:-unset}:$PATH"
type deactivate >/dev/null 2>&1 && echo "deactivate still defined" || echo "deactivate gone"
"""


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_activate_inside_the_run(runx, mode, shell):
    r = runx.run("--tree", mode, "--with", "runxdemo", shell, "-c", ACTIVATE)
    assert r.returncode == 0, r.stderr
    tree, python, prefix, after, gone = r.stdout.splitlines()
    assert python == f"{tree}/bin/python" and prefix == tree
    assert after == "after:unset:/usr/bin:/bin" and gone == "deactivate gone"


@pytest.mark.skipif(not shutil.which("fish") and not shutil.which("csh"),
                    reason="no fish or csh on this machine")
def test_activate_fish_and_csh(runx):
    for shell, script in (("fish", 'source $RUNX_ENV/bin/activate.fish; echo $VIRTUAL_ENV; '
                                   'command -v python; deactivate; echo "x$VIRTUAL_ENV"'),
                          ("csh", 'unsetenv VIRTUAL_ENV; source $RUNX_ENV/bin/activate.csh; '
                                  'echo $VIRTUAL_ENV; which python; deactivate; '
                                  'echo x$?VIRTUAL_ENV')):
        if not shutil.which(shell):
            continue
        r = runx.run("--with", "runxdemo", shell, "-c", script)
        assert r.returncode == 0, (shell, r.stderr)
        tree, python, after = r.stdout.split()
        assert python == f"{tree}/bin/python" and after in ("x", "x0"), (shell, r.stdout)


# --- no command -------------------------------------------------------------------

def test_no_command_lists_the_environments_commands(runx, wheels):
    r = runx.run("--with", "datademo,runxdemo")
    assert r.returncode == 2
    # A cold build first says what it installed (one line, not on a terminal).
    assert r.stderr.splitlines()[-1] == (
        "runx: error: no command given (the environment's commands: "
        "datademo, runxdemo, tool.py; or python, -m MODULE)")
    assert all(line.startswith("runx: installed ") for line in r.stderr.splitlines()[:-1])
    assert not runx.trees()
    r = runx.run()
    assert r.returncode == 2 and r.stderr.startswith("runx: error: no command given (try:")


# --- non-root: the shared layer cannot be written ------------------------------

WRITE_LAYER = """\
import json, os, sys, glob
cfg = open(os.path.join(sys.prefix, "pyvenv.cfg")).read().splitlines()
layer = [l.split(" = ", 1)[1] for l in cfg if l.startswith("runx-layer = ")][0]
out = {}
def attempt(name, fn):
    try:
        fn()
        out[name] = "written"
    except PermissionError:
        out[name] = "denied"
if sys.argv[1] == "frozen":
    # Until its compile, a layer's site-packages and root stay writable for
    # the bytecode and the manifest (runx_env.reaper.finish.compile_and_freeze); afterwards, not.
    site = glob.glob(os.path.join(layer, "lib/python*/site-packages"))[0]
    attempt("site-packages", lambda: open(os.path.join(site, "evil.py"), "w").close())
    attempt("layer root", lambda: os.mkdir(os.path.join(layer, "evil")))
# odd/top/level/entry is below the mirrored depth: a link into the layer.
assert os.path.islink(os.path.join(sys.prefix, "odd/top/level/entry"))
attempt("data via a link", lambda: open(os.path.join(
    sys.prefix, "odd/top/level/entry/evil"), "w").close())
attempt("share in the layer", lambda: open(os.path.join(layer, "share/evil"), "w").close())
attempt("tree's own share", lambda: open(os.path.join(sys.prefix, "share/mine"), "w").close())
print(json.dumps(out))
"""


@pytest.mark.parametrize("mode", MODES)
def test_layer_is_not_writable_for_a_normal_user(tmp_path, mode):
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to the user nobody")
    fuse_mode = None
    if mode == "fuse":
        # Distributions make /dev/fuse 0666 (fusermount3 is set-user-ID root
        # here); this container made it 0600. Open it up for the test only.
        fuse_mode = os.stat("/dev/fuse").st_mode & 0o777
        os.chmod("/dev/fuse", 0o666)
    base = tempfile.mkdtemp(prefix="runx-nobody-")
    try:
        os.chmod(base, 0o755)
        wh, cache, runtime, uvcache = (os.path.join(base, d) for d in
                                       ("wheels", "cache", "run", "uv"))
        for d in (wh, cache, uvcache):
            os.mkdir(d)
        build_wheel(wh, "datademo", "1.0", files={"datademo/__init__.py": TOOL},
                    scripts={"tool.py": "datademo:main"}, data=DATA)
        subprocess.run(["chown", "-R", "nobody:nogroup", base], check=True)
        env = {k: v for k, v in os.environ.items()
               if k not in ("RUNX_ENV", "VIRTUAL_ENV", "RUNX_TREE", "XDG_RUNTIME_DIR")}
        env.update(RUNX_CACHE_DIR=cache, RUNX_RUNTIME_DIR=runtime, UV_CACHE_DIR=uvcache,
                   HOME=base)
        argv = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
                # The system python: the test runner's may live under /root (0700).
                RUNX, "--python", "/usr/bin/python3", "--tree", mode, "--find-links", wh,
                "--no-index", "--with", "datademo",
                "python", "-c", WRITE_LAYER]
        # The first run (the layer still compiling) and one on the frozen layer.
        for first in (True, False):
            r = subprocess.run(argv + ["first" if first else "frozen"], capture_output=True,
                               text=True, env=env, timeout=120)
            assert r.returncode == 0, r.stderr
            got = json.loads(r.stdout)
            expect = {"data via a link": "denied", "share in the layer": "denied",
                      "tree's own share": "written"}
            if not first:
                expect.update({"site-packages": "denied", "layer root": "denied"})
            assert {k: got[k] for k in expect} == expect, (first, got)
            if first:
                def frozen():
                    layers = os.path.join(cache, "layers")
                    m = [os.path.join(layers, k, "current", "runx-layer.json")
                         for k in os.listdir(layers)]
                    return all(json.load(open(p))["compiled"] for p in m if os.path.exists(p))
                wait_until(frozen, 120, "the layer to be compiled and frozen")
        wait_until(lambda: not runtime_entries(runtime), 30,
                   "the nobody runs' trees to be removed")
    finally:
        if fuse_mode is not None:
            os.chmod("/dev/fuse", fuse_mode)
        subprocess.run(["chmod", "-R", "u+w", base], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


# --- real packages (PyPI) ---------------------------------------------------------

NOTEBOOK = {
    "nbformat": 4, "nbformat_minor": 5, "metadata": {},
    "cells": [
        {"cell_type": "markdown", "id": "m1", "metadata": {}, "source": "# Hello *runx*"},
        {"cell_type": "code", "id": "c1", "metadata": {}, "execution_count": 1,
         "source": "print(6 * 7)",
         "outputs": [{"output_type": "stream", "name": "stdout", "text": "42\n"}]},
    ],
}


@pytest.mark.parametrize("mode", MODES)
def test_nbconvert_html_export(runx, tmp_path, mode):
    nb = tmp_path / "nb.ipynb"
    nb.write_text(json.dumps(NOTEBOOK))
    r = runx.run("--tree", mode, "--with", "nbconvert", "jupyter", "nbconvert", "--to", "html",
                 str(nb), local=False, env=_env(runx, tmp_path), timeout=600)
    assert r.returncode == 0, r.stderr
    html = (tmp_path / "nb.html").read_text()
    assert "Hello <em>runx</em>" in html and "42" in html and "jp-Notebook" in html


@pytest.mark.parametrize("mode", MODES)
def test_jupyter_server_extensions_enabled(runx, tmp_path, mode):
    r = runx.run("--tree", mode, "--with", "jupyterlab", "jupyter", "server", "extension",
                 "list", local=False, env=_env(runx, tmp_path), timeout=600)
    assert r.returncode == 0, r.stderr
    text = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout + r.stderr)      # it colours regardless
    for ext in ("jupyter_lsp", "jupyter_server_terminals", "notebook_shim", "jupyterlab"):
        assert any(line.split()[:2] == [ext, "enabled"] for line in text.splitlines()), (
            ext, text)


def _get(url: str, token: str):
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


@pytest.mark.parametrize("mode", MODES)
def test_live_jupyter_lab(runx, tmp_path, mode):
    token = os.urandom(8).hex()
    log = open(tmp_path / "lab.log", "w+")
    # --port=0: the kernel picks a free port (no race with other tests); the
    # server logs its URL.
    p = runx.popen("--tree", mode, "--with", "jupyterlab", "jupyter", "lab", "--no-browser",
                   "--allow-root", "--ip=127.0.0.1", "--port=0",
                   f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
                   local=False, env=_env(runx, tmp_path), stdout=log, stderr=subprocess.STDOUT,
                   stdin=subprocess.DEVNULL)
    try:
        def url():
            text = (tmp_path / "lab.log").read_text()
            assert p.poll() is None, f"jupyter lab exited: {text}"
            m = re.search(r"http://127\.0\.0\.1:([0-9]+)/", text)
            return m and m.group(0).rstrip("/")
        base = wait_until(url, 600, "jupyter lab to log its URL")

        def up():
            try:
                return _get(f"{base}/api/status", token)[0] == 200
            except (OSError, urllib.error.URLError):
                return False
        wait_until(up, 120, "jupyter lab to answer")
        status, terminals = _get(f"{base}/api/terminals", token)
        assert status == 200 and terminals == []
        status, extensions = _get(f"{base}/lab/api/extensions", token)
        prebuilt = {e["name"] for e in extensions if e.get("pkg_type") == "prebuilt"}
        assert status == 200 and "jupyterlab-pygments" in prebuilt, extensions
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)       # jupyter's own clean shutdown
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()
    runx.wait_clean(60)


PIP_INSTALL = """\
set -e
python -m pip install --quiet --no-index --find-links "$WH" datademo
python -c 'import datademo, os, sys; print(datademo.__file__); print(open(os.path.join(sys.prefix, "share/datademo/templates/page.txt")).read().strip())'
python -c 'import os, sys; print(sorted(os.listdir(os.path.join(sys.prefix, "share/man/man1"))))'
python -c 'import os, sys; print(sorted(os.listdir(os.path.join(sys.prefix, "etc/datademo/conf.d"))))'
command -v tool.py
echo "$VIRTUAL_ENV"
"""


@pytest.mark.parametrize("mode", MODES)
def test_pip_install_lands_in_the_tree(runx, wheels, tmp_path, mode):
    # The layer has data files in the directories datademo adds to: the run
    # sees both, and datademo's go into the tree only.
    build_wheel(wheels, "layerdata", "1.0", files={"layerdata/__init__.py": ""}, scripts={},
                data={"share/man/man1/layerdata.1": ".TH L 1\n",
                      "etc/datademo/conf.d/layer.json": "{}\n"})
    env = dict(runx.env, WH=wheels, PIP_DISABLE_PIP_VERSION_CHECK="1")
    r = runx.run("--tree", mode, "--find-links", wheels, "--with", "pip", "--with", "layerdata",
                 "sh", "-c", PIP_INSTALL, local=False, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    module, page, man1, confd, tool, tree = r.stdout.splitlines()
    assert module.startswith(tree + "/") and tool == f"{tree}/bin/tool.py"
    assert page == "template"
    assert man1 == "['datademo.1', 'layerdata.1']" and confd == "['layer.json', 'on.json']"
    runx.wait_clean()
    assert not os.path.exists(tree)
    layer = _layer_of(runx, ["pip", "layerdata"])
    assert not glob.glob(os.path.join(layer, "lib/python*/site-packages/datademo*"))
    assert not os.path.exists(os.path.join(layer, "bin/tool.py"))
    for dirpath, _dirnames, filenames in os.walk(layer):
        assert not {"datademo.1", "on.json", "page.txt"} & set(filenames), dirpath


SYS_PATH = ("import os, sys; print(open(os.path.join(sys.prefix, 'lib', 'python%d.%d' % "
            "sys.version_info[:2], 'site-packages', '_runx_layer.pth')).read().strip()); "
            "print(repr(sys.path[-2:])); print(os.environ.get('PTH_HOOK', '-'))")


@pytest.mark.parametrize("mode", MODES)
def test_the_layer_on_sys_path_with_and_without_pth_files(runx, wheels, mode):
    """A layer without .pth files is a bare path line in the tree's .pth (its
    site-packages is never listed at start-up); one with them goes through
    addsitedir, so they run. Either way sys.path ends with the tree's
    site-packages, then the layer's."""
    build_wheel(wheels, "pthhook", "1.0", scripts={}, files={
        "pthhook/__init__.py": "",
        "pthhook.pth": "import os; os.environ['PTH_HOOK'] = 'ran'\n"})
    for req, hook in (("runxdemo", "-"), ("pthhook", "ran")):
        r = runx.run("--tree", mode, "--find-links", wheels, "--with", req, "python", "-c",
                     SYS_PATH)
        assert r.returncode == 0, r.stderr
        line, tail, ran = r.stdout.splitlines()
        tree_sp, layer_sp = eval(tail)
        assert tree_sp.startswith(os.path.realpath(runx.runtime))
        assert "/layers/" in layer_sp and ran == hook
        if hook == "-":
            assert line == layer_sp
        else:
            assert line == f"import site; site.addsitedir({layer_sp!r})"
    runx.wait_clean()
