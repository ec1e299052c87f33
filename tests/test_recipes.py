"""Every recipe in docs/recipes.md, read from the document itself
and run here as far as this machine allows (no editor, no CI runner, no
systemd as PID 1, no docker engine: their command lines, their file formats,
and the process facts they rely on are what is checked).

Packages the recipes name (rich, ruff) come from fake wheels of those names
on a local find-links directory (UV_FIND_LINKS, and an empty local index
as UV_DEFAULT_INDEX: uv reads both and runx makes them part of the layer's
name): hermetic, and the recipes' text
stays the real thing.
"""

import array
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import RUNX, alive, build_wheel, reapers, runtime_entries, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = os.path.join(ROOT, "docs", "recipes.md")

FAKE_RICH = '''\
import builtins, re

def print(*args, **kw):
    builtins.print(*(re.sub(r"\\[/?[a-z ]+\\]", "", str(a)) for a in args), **kw)
'''
FAKE_RUFF = '''\
import sys

def main():
    print("ruff (fake)", " ".join(sys.argv[1:]))
    print("All checks passed!")
    return 0
'''


def recipe(name: str) -> str:
    """The fenced block after ``<!-- recipe: NAME -->`` in docs/recipes.md."""
    with open(RECIPES) as f:
        text = f.read()
    m = re.search(rf"^<!-- recipe: {re.escape(name)} -->\n```[\w-]*\n(.*?)^```$", text,
                  re.M | re.S)
    assert m, f"docs/recipes.md has no block for recipe {name}"
    return m.group(1)


@pytest.fixture(scope="module")
def fakes(tmp_path_factory) -> str:
    d = str(tmp_path_factory.mktemp("fake-wheels"))
    build_wheel(d, "rich", "13.0", files={"rich/__init__.py": FAKE_RICH}, scripts={})
    build_wheel(d, "ruff", "0.5.0", files={"ruff/__init__.py": FAKE_RUFF},
                scripts={"ruff": "ruff:main"})
    return d


@pytest.fixture
def env(runx, fakes, tmp_path) -> dict:
    """The recipes' environment: runx on PATH, packages from the fakes only
    (the index is an empty local one: uv has no environment variable for
    --no-index)."""
    empty = tmp_path / "empty-index"
    empty.mkdir()
    index = "file://" + str(empty)
    e = dict(runx.env, UV_FIND_LINKS=fakes, UV_DEFAULT_INDEX=index, UV_INDEX_URL=index)
    e.pop("UV_EXTRA_INDEX_URL", None)
    e.pop("UV_INDEX", None)
    e["PATH"] = os.path.dirname(RUNX) + os.pathsep + e.get("PATH", "")
    return e


APP = '''\
# /// script
# dependencies = ["rich"]
# ///
import json, os, sys
from rich import print
print(json.dumps({"argv": sys.argv[1:], "pid": os.getpid(), "ppid": os.getppid(),
                  "env": os.environ.get("RUNX_ENV"), "flags": sys.flags.dev_mode}))
'''


@pytest.mark.fast
def test_every_recipe_block_is_there():
    with open(RECIPES) as f:
        names = re.findall(r"^<!-- recipe: (\S+) -->$", f.read(), re.M)
    assert sorted(names) == sorted([
        "service.py", "shebang", "vscode-launch.json", "pycharm.run.xml",
        "github-actions.yml", "app.service", "Dockerfile", "kernel.json"])
    for n in names:
        assert recipe(n).strip()


def test_shebang_script(runx, env, tmp_path):
    hello = tmp_path / "hello"
    hello.write_text(recipe("shebang"))
    hello.chmod(0o755)
    p = subprocess.Popen(["./hello", "a", "b"], cwd=str(tmp_path), env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert out == "hello a b\n"
    assert err == "", "--quiet in the shebang: nothing but the script's output"
    runx.wait_clean()


def test_vscode_launch_configuration(runx, env, tmp_path):
    launch = json.loads(recipe("vscode-launch.json"))
    (config,) = launch["configurations"]
    assert config["type"] == "debugpy" and config["request"] == "launch"
    app = tmp_path / "app.py"
    app.write_text(APP)
    subst = {"${file}": str(app), "${workspaceFolder}": str(tmp_path)}

    def resolve(v):
        for k, val in subst.items():
            v = v.replace(k, val)
        return v
    python = [resolve(x) for x in config["python"]]
    program = resolve(config["program"])
    args = [resolve(a) for a in config["args"]] + ["--flag"]
    # debugpy runs: python + [its interpreter options, its launcher…] + program + args.
    # Interpreter options after "python" pass through runx to python:
    cmd = python + ["-X", "dev", program] + args
    p = subprocess.Popen(cmd, cwd=resolve(config["cwd"]), env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    info = json.loads(out)
    assert info["argv"] == ["--flag"] and info["flags"] is True
    assert info["pid"] == p.pid, "the debugger's child is the program itself"
    assert info["env"].startswith(runx.runtime + "/")
    runx.wait_clean()


def test_pycharm_run_configuration(runx, env, tmp_path):
    root = ET.fromstring(recipe("pycharm.run.xml"))
    assert root.tag == "component" and root.get("name") == "ProjectRunConfigurationManager"
    (conf,) = root.findall("configuration")
    assert conf.get("type") == "ShConfigurationType"
    opts = {o.get("name"): o.get("value") for o in conf.findall("option")}
    assert opts["EXECUTE_SCRIPT_FILE"] == "false"
    (tmp_path / "app.py").write_text(APP)
    cwd = opts["SCRIPT_WORKING_DIRECTORY"].replace("$PROJECT_DIR$", str(tmp_path))
    p = subprocess.Popen([opts["INTERPRETER_PATH"], "-c", opts["SCRIPT_TEXT"]], cwd=cwd, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    info = json.loads(out)
    assert info["argv"] == ["--port", "8000"]
    assert info["pid"] == p.pid, "bash exec → runx exec → the script: Stop signals it"
    runx.wait_clean()


def workflow_steps(text: str) -> list:
    """[(name, run)] of the workflow's steps (a YAML subset: what the recipe uses)."""
    try:
        import yaml
    except ImportError:
        yaml = None
    if yaml is not None:
        doc = yaml.safe_load(text)
        return [(s.get("name"), s.get("run")) for job in doc["jobs"].values()
                for s in job["steps"]]
    steps = []
    for line in text.splitlines():
        m = re.match(r"^\s*- (name|uses|run): (.*)$", line)
        if m:
            steps.append([None, None])
        m2 = re.match(r"^\s*(?:- )?(name|run): (.*)$", line)
        if m2 and steps:
            steps[-1][0 if m2.group(1) == "name" else 1] = m2.group(2)
    return [tuple(s) for s in steps]


def test_github_actions_steps(runx, env, tmp_path):
    text = recipe("github-actions.yml")
    assert "\t" not in text
    steps = dict(s for s in workflow_steps(text) if s[0])
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "report.py").write_text(
        '# /// script\n# dependencies = ["rich"]\n# ///\nimport sys\nfrom rich import print\n'
        'print("[bold]# Report[/bold]", " ".join(sys.argv[1:]))\n')
    summary = tmp_path / "summary.md"
    # A cache of the job's own (the session's holds other tests' layers).
    cache = str(tmp_path / "ci-cache")
    e = dict(env, GITHUB_STEP_SUMMARY=str(summary), CI="true", RUNX_CACHE_DIR=cache)
    # The cache: keyed on the Python version and the inputs, restored with
    # restore-keys, saved (with the restored key) after the prepare step.
    names = [n for n, _ in workflow_steps(text)]
    assert names.index("Prepare the environments") < names.index("Save the prepared cache") \
        < names.index("Report")
    assert re.search(r"key: runx-.*steps\.python\.outputs\.python-version.*hashFiles\(", text)
    assert re.search(r"restore-keys: \|\n\s+runx-.*python-version \}\}-\n", text)
    assert "key: ${{ steps.cache.outputs.cache-primary-key }}" in text
    for name in ("Prepare the environments", "Report", "Lint"):
        # GitHub's default shell on Linux: bash --noprofile --norc -eo pipefail {0}
        r = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", steps[name]],
                           cwd=str(tmp_path), env=e, capture_output=True, text=True, timeout=180,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, f"step {name}: {r.stderr}"
        # Nothing but its output, and on a cold build the one line that says
        # what was installed and how long it took.
        assert all(re.fullmatch(r"runx: installed \d+ packages? in [0-9.]+s \(.*\)", ln)
                   or re.fullmatch(r"runx: ready: .*, compiled \(.*\)", ln)
                   for ln in r.stderr.splitlines()), f"step {name} logged more: {r.stderr}"
        if name == "Prepare the environments":
            # Done before the cache is saved: every layer compiled and frozen,
            # nothing left running that could still write into it.
            assert assert_layers_finished(cache) == 2
            assert not reapers(runx.runtime)
        else:
            assert r.stderr == "", f"step {name} was not warm: {r.stderr}"
        if name == "Lint":
            assert "All checks passed!" in r.stdout and "check ." in r.stdout
    assert summary.read_text() == "# Report --format markdown\n"
    runx.wait_clean()


def assert_layers_finished(cache: str) -> int:
    """Every current layer of the cache byte-compiled and read-only (what a
    warm run believes, see reaper/finish.py); how many there are."""
    import marshal

    root = os.path.join(cache, "layers")
    n = 0
    for k in os.listdir(root) if os.path.isdir(root) else []:
        current = os.path.join(root, k, "current")
        if not os.path.islink(current):
            continue
        manifest = os.path.join(current, "runx-layer.marshal")
        with open(manifest, "rb") as f:
            assert marshal.loads(f.read())["compiled"], current
        assert not os.stat(manifest).st_mode & 0o222, current
        assert not os.stat(current).st_mode & 0o222, current
        n += 1
    return n


def unit(text: str, service: str) -> str:
    """The recipe's unit with this machine's paths."""
    return (text.replace("/usr/local/bin/runx", RUNX).replace("/srv/app/service.py", service))


def unit_value(text: str, key: str) -> str:
    (v,) = re.findall(rf"^{key}=(.*)$", text, re.M)
    return v


def test_systemd_unit_verifies(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    service = tmp_path / "service.py"
    service.write_text(recipe("service.py"))
    text = recipe("app.service")
    assert unit_value(text, "Type") == "notify" and unit_value(text, "NotifyAccess") == "main"
    path = tmp_path / "app.service"
    path.write_text(unit(text, str(service)))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)],
                       capture_output=True, text=True, timeout=60)
    about_unit = [ln for ln in r.stderr.splitlines() if "app.service" in ln]
    assert r.returncode == 0 and not about_unit, r.stderr


def test_systemd_notify_comes_from_the_main_pid(runx, env, tmp_path):
    """What systemd does for Type=notify/NotifyAccess=main: bind NOTIFY_SOCKET
    (SO_PASSCRED), start ExecStart, and accept READY=1 only if the kernel says
    the sender is the PID it started."""
    service = tmp_path / "service.py"
    service.write_text(recipe("service.py"))
    text = unit(recipe("app.service"), str(service))
    e = dict(env, RUNX_CACHE_DIR=runx.cache)   # the unit's cache dir is for a real host
    pre = subprocess.run(shlex.split(unit_value(text, "ExecStartPre")), env=e,
                         capture_output=True, text=True, timeout=120)
    assert pre.returncode == 0, pre.stderr
    sock_path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.bind(sock_path)
    sock.settimeout(60)
    p = subprocess.Popen(shlex.split(unit_value(text, "ExecStart")), env=dict(e, NOTIFY_SOCKET=sock_path),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL)
    try:
        def receive():
            """(message, sender pid as the kernel reports it)."""
            ucred = array.array("i", [0, 0, 0])      # struct ucred: pid, uid, gid
            msg, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(ucred.itemsize * 3))
            pid = None
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    ucred = array.array("i", data[:ucred.itemsize * 3])
                    pid = ucred[0]
            return msg.decode(), pid
        msg, pid = receive()
        assert msg == "READY=1"
        assert pid == p.pid, "NotifyAccess=main: the sender must be the PID systemd started"
        assert p.stdout.readline() == f"service: ready, pid {p.pid}\n"
        p.send_signal(signal.SIGTERM)            # systemctl stop
        msg, pid = receive()
        assert (msg, pid) == ("STOPPING=1", p.pid)
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert "stopping on signal 15" in out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        sock.close()
    runx.wait_clean()


def test_docker_entrypoint_payload_is_pid1(runx, env, tmp_path):
    """`docker run` without a docker engine: runx as PID 1 of a new PID
    namespace (unshare), as the exec-form ENTRYPOINT makes it."""
    if not shutil.which("unshare"):
        pytest.skip("unshare not installed (util-linux)")
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a PID namespace here: {probe.stderr.decode().strip()}")
    dockerfile = recipe("Dockerfile")
    service = tmp_path / "service.py"
    service.write_text(recipe("service.py"))
    mapped = lambda a: {"runx": RUNX, "/app/service.py": str(service)}.get(a, a)  # noqa: E731
    env = dict(env, RUNX_CACHE_DIR=str(tmp_path / "image-cache"))     # the image's own
    # The build step that warms the layer (RUN runx ...):
    for line in re.findall(r"^RUN (runx .*)$", dockerfile, re.M):
        r = subprocess.run([mapped(a) for a in shlex.split(line)], env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    # The step is over: the image's layer (if the script needs packages) must
    # be finished now, and nothing of the step left running (docker kills it,
    # and commits what is on disk).
    assert_layers_finished(env["RUNX_CACHE_DIR"])
    assert not reapers(runx.runtime)
    assert not runtime_entries(runx.runtime)
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.M).group(1))
    assert entrypoint[0] == "runx", "exec form, runx first: runx is PID 1's program"
    p = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc",
                          *[mapped(a) for a in entrypoint]],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL)
    try:
        assert p.stdout.readline() == "service: ready, pid 1\n", "the service is PID 1"
        with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
            (pid1,) = [int(x) for x in f.read().split()]
        with open(f"/proc/{pid1}/status") as f:
            nspid = [ln.split()[1:] for ln in f if ln.startswith("NSpid:")][0]
        assert nspid == [str(pid1), "1"]
        with open(f"/proc/{pid1}/cmdline") as f:
            assert str(service) in f.read(), "PID 1 runs the script itself"
        os.kill(pid1, signal.SIGTERM)            # docker stop
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert "stopping on signal 15" in out, "PID 1 got SIGTERM itself, no forwarding"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # PID 1's exit killed the namespace, reaper included (as in a container):
    # the next runx (here `runx gc`) removes what it left.
    wait_until(lambda: not any(alive(x) for x in reapers(runx.runtime)), 10, "namespace to be gone")
    subprocess.run([RUNX, "gc"], env=env, capture_output=True, timeout=60)
    runx.wait_clean()




def test_jupyter_kernel_spec(tmp_path, monkeypatch):
    """The recipe's kernel.json is what `runx kernel install --with
    pandas,matplotlib` writes (but runx's own path and version), and
    jupyter_client reads it as meant."""
    from runx_env.runner import kernel
    from runx_env.version import __version__

    spec = json.loads(recipe("kernel.json"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    monkeypatch.delenv("RUNX_CACHE_DIR", raising=False)
    monkeypatch.setattr("sys.argv", [RUNX, "kernel"])        # as the runx command runs it
    dest, written = kernel.command(["install", "--with", "pandas,matplotlib"]).kernelspec
    assert dest == str(tmp_path / "jupyter" / "kernels" / "runx-pandas")
    assert written["argv"][0] == RUNX
    written["argv"][0] = spec["argv"][0]
    assert written["metadata"]["runx"].pop("version") == __version__
    spec["metadata"]["runx"].pop("version")
    assert written == spec
    assert spec["interrupt_mode"] == "signal"
    kernelspec = pytest.importorskip("jupyter_client.kernelspec")
    d = tmp_path / "kernels" / "runx"
    d.mkdir(parents=True)
    (d / "kernel.json").write_text(recipe("kernel.json"))
    ksm = kernelspec.KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    assert "runx" in ksm.find_kernel_specs()
    ks = ksm.get_kernel_spec("runx")
    assert ks.argv == spec["argv"] and ks.interrupt_mode == "signal"
    assert ks.language == "python" and ks.display_name == spec["display_name"]
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="runx", kernel_spec_manager=ksm)
    km.connection_file = str(tmp_path / "kernel-1.json")
    cmd = km.format_kernel_cmd()
    assert cmd[-2:] == ["-f", str(tmp_path / "kernel-1.json")]
    assert os.path.basename(cmd[0]) == "runx"


def _notify_socket(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.bind(path)
    os.chmod(path, 0o777)            # systemd's is reachable by the service's user
    sock.settimeout(60)
    return sock


def _receive(sock: socket.socket, p: subprocess.Popen) -> tuple:
    """(message, sender pid, sender uid) as the kernel reports them; fails
    with the service's stderr if it exits first."""
    ucred = array.array("i", [0, 0, 0])      # struct ucred: pid, uid, gid
    sock.settimeout(0.2)
    deadline = time.monotonic() + 60
    while True:
        try:
            msg, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(ucred.itemsize * 3))
            break
        except TimeoutError:
            if p.poll() is not None:
                pytest.fail(f"the service exited ({p.returncode}): {p.stderr.read()}")
            assert time.monotonic() < deadline, "no notification within 60 s"
    pid = uid = None
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            ucred = array.array("i", data[:ucred.itemsize * 3])
            pid, uid = ucred[0], ucred[1]
    return msg.decode(), pid, uid


def test_systemd_unit_runs_as_a_homeless_user(wheelhouse):
    """The recipe's unit as systemd runs it for User= a system user whose
    home is /nonexistent (issue 22.3), emulated: that user made for real,
    the unit's CacheDirectory= and RuntimeDirectory= made 0755 for it and
    named in $CACHE_DIRECTORY / $RUNTIME_DIRECTORY, systemd's own PATH,
    NOTIFY_SOCKET bound with SO_PASSCRED; ExecStartPre, then ExecStart,
    whose READY=1 must come from the PID started, as that user. Layers and
    uv's cache land in the cache directory, trees in the runtime one, and
    nothing anywhere else (uv could not make ~/.cache/uv, runx ~/.cache/runx)."""
    from users import clean_env, launcher, second_user, shared_dir

    text = recipe("app.service")
    assert not re.search(r"^Environment=.*RUNX_", text, re.M), "the simplest unit sets no RUNX_*"
    with shared_dir() as d, second_user() as pw:
        runx = launcher(d)
        service = os.path.join(d, "service.py")
        with open(service, "w") as f:
            f.write(recipe("service.py"))
        made = {}
        for key, top in (("CacheDirectory", "cache"), ("RuntimeDirectory", "run")):
            path = os.path.join(d, top, unit_value(text, key))
            os.makedirs(path, mode=0o755)
            os.chown(path, pw.pw_uid, pw.pw_gid)
            made[key] = path
        wheels = os.path.join(d, "wheels")
        shutil.copytree(wheelhouse, wheels)
        os.chmod(wheels, 0o755)
        sock = _notify_socket(os.path.join(d, "notify"))
        env = clean_env(HOME="/nonexistent", USER=pw.pw_name, LOGNAME=pw.pw_name,
                        PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin",
                        CACHE_DIRECTORY=made["CacheDirectory"],
                        RUNTIME_DIRECTORY=made["RuntimeDirectory"])
        as_user = dict(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[], cwd="/")
        lines = unit(text, service).replace(RUNX, runx)
        pre = subprocess.run(shlex.split(unit_value(lines, "ExecStartPre")), env=env,
                             capture_output=True, text=True, timeout=120, **as_user)
        assert pre.returncode == 0, pre.stderr
        p = subprocess.Popen(shlex.split(unit_value(lines, "ExecStart")),
                             env=dict(env, NOTIFY_SOCKET=sock.getsockname()),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             stdin=subprocess.DEVNULL, **as_user)
        trees = os.path.join(made["RuntimeDirectory"], "runx")
        try:
            msg, pid, uid = _receive(sock, p)
            assert (msg, pid, uid) == ("READY=1", p.pid, pw.pw_uid), \
                "NotifyAccess=main: the sender must be the PID systemd started"
            assert p.stdout.readline() == f"service: ready, pid {p.pid}\n"
            assert [n for n in os.listdir(trees) if not n.endswith(".lock")], \
                "the run's tree is in $RUNTIME_DIRECTORY/runx"
            p.send_signal(signal.SIGTERM)            # systemctl stop
            assert _receive(sock, p)[:2] == ("STOPPING=1", p.pid)
            out, err = p.communicate(timeout=30)
            assert p.returncode == 0, err
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            sock.close()
        wait_until(lambda: not runtime_entries(trees), 30, "the service's tree to be removed")
        # A layer (uv runs): built into $CACHE_DIRECTORY/runx, uv's cache beside it.
        r = subprocess.run([runx, "--find-links", wheels, "--no-index", "--with", "runxdemo",
                            "python", "-c", "import runxdemo"], env=env, capture_output=True,
                           text=True, timeout=120, **as_user)
        assert r.returncode == 0, r.stderr
        cache = os.path.join(made["CacheDirectory"], "runx")
        assert os.listdir(os.path.join(cache, "layers")) and os.listdir(os.path.join(cache, "uv"))
        assert not os.path.exists("/nonexistent")
        wait_until(lambda: not runtime_entries(trees), 30, "the tree to be removed")


def test_recipes_install_runx_with_a_command_that_works(tmp_path):
    """Issue 22.6: runx is not on PyPI (`pip install runx` is another
    project's); the Docker and Actions recipes install the wheel built from
    this checkout, named for this version. The Actions step runs here as
    written, with `python` a fresh venv's and vendor/ holding that wheel."""
    from runx_env.version import __version__

    wheel = f"runx_env-{__version__}-py3-none-any.whl"
    dockerfile = recipe("Dockerfile")
    assert re.search(rf"^COPY {re.escape(wheel)} /tmp/$", dockerfile, re.M), dockerfile
    assert re.search(rf"^RUN python -m pip install --no-cache-dir /tmp/{re.escape(wheel)}$",
                     dockerfile, re.M), dockerfile
    steps = dict(s for s in workflow_steps(recipe("github-actions.yml")) if s[0])
    step = steps["Install runx"]
    assert wheel in step and "runx-env" not in step.split()
    from test_packaging import build_dist

    vendor = tmp_path / "vendor"
    build_dist(vendor, tmp_path / "tree", "--wheel")
    uv = os.path.join(os.path.dirname(RUNX), "uv")
    assert [n for n in os.listdir(vendor) if n.endswith(".whl")] == [wheel]
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", "--seed", "--python", "/usr/bin/python3"
                    if os.path.exists("/usr/bin/python3") else sys.executable, str(venv)],
                   check=True, timeout=120)
    e = dict(os.environ, PATH=f"{venv}/bin:/usr/bin:/bin", VIRTUAL_ENV=str(venv))
    r = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step],
                       cwd=str(tmp_path), env=e, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    v = subprocess.run(["runx", "--version"], env=e, capture_output=True, text=True, timeout=60)
    assert v.returncode == 0 and v.stdout.startswith(f"runx {__version__}"), v.stderr
