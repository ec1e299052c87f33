"""``runx kernel install|list|remove``, and the kernels it installs run for
real under jupyter_client's KernelManager, ipykernel from PyPI: start,
execute, interrupt (a client that signals the process group, as current
jupyter_client does, and one that signals the kernel's PID only, as older
clients and tools do), restart (a fresh environment, the old one removed),
shutdown (the last one removed), SIGKILL (nothing left); with --tree dir
and --tree fuse."""

import json
import os
import queue
import signal
import subprocess
import time

import pytest

from conftest import RUNX, one_error_line, reapers, runtime_entries, wait_until

from jupyter_client.kernelspec import KernelSpecManager    # the test extra: never skipped
from jupyter_client.manager import KernelManager


def kernel(r, jd: str, *args) -> subprocess.CompletedProcess:
    """``runx kernel ARGS`` with ``jd`` as the Jupyter data directory."""
    return subprocess.run([RUNX, "kernel", *args], capture_output=True, text=True,
                          timeout=600, env=dict(r.env, JUPYTER_DATA_DIR=jd))


@pytest.fixture
def jd(tmp_path) -> str:
    return str(tmp_path / "jupyter")


def install(r, jd: str, *args) -> dict:
    p = kernel(r, jd, "install", "--find-links", r.wheelhouse, "--with", "runxdemo", *args)
    assert p.returncode == 0, p.stderr
    assert "installed kernel" in p.stderr
    # Prepared: nothing of a run left behind.
    assert runtime_entries(r.runtime) == [] and reapers(r.runtime) == []
    name = args[args.index("--name") + 1] if "--name" in args else "runx-runxdemo"
    with open(os.path.join(jd, "kernels", name, "kernel.json")) as f:
        return json.load(f)


def test_install_writes_a_runx_kernelspec_and_prepares_its_layer(runx, jd, tmp_path):
    spec = install(runx, jd)
    assert spec["argv"][0] == RUNX and os.path.isabs(spec["argv"][0])
    assert spec["argv"][-4:] == ["-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert ["--with", "ipykernel"] == spec["argv"][-6:-4]
    assert spec["interrupt_mode"] == "signal" and spec["language"] == "python"
    assert spec["metadata"]["runx"]["args"] == spec["argv"][1:-4]
    assert spec["env"]["RUNX_CACHE_DIR"] == runx.cache
    ksm = KernelSpecManager(kernel_dirs=[os.path.join(jd, "kernels")])
    assert "runx-runxdemo" in ksm.find_kernel_specs()
    # The layer is finished: the kernel's own command line, run now, is warm.
    p = subprocess.run([spec["argv"][0], "-v", *spec["argv"][1:-4], "python", "-c",
                        "import ipykernel"], capture_output=True, text=True, env=runx.env,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert "layer hit" in p.stderr and "layer miss" not in p.stderr
    runx.wait_clean()

    listed = kernel(runx, jd, "list")
    assert listed.returncode == 0 and "runx-runxdemo" in listed.stdout
    # Reinstalling a runx kernel replaces it; --name, --display-name, --env.
    spec = install(runx, jd, "--name", "demo", "--display-name", "Demo", "--env", "A", "1")
    assert spec["display_name"] == "Demo" and spec["env"]["A"] == "1"
    p = kernel(runx, jd, "remove", "demo", "runx-runxdemo")
    assert p.returncode == 0, p.stderr
    assert os.listdir(os.path.join(jd, "kernels")) == []


def test_install_from_a_script_gets_its_dependencies_and_python(runx, jd, tmp_path):
    script = tmp_path / "analysis.py"
    script.write_text('# /// script\n# requires-python = ">=3.8"\n# dependencies = ["runxdemo"]\n'
                      '# ///\n')
    p = kernel(runx, jd, "install", "--find-links", runx.wheelhouse, str(script))
    assert p.returncode == 0, p.stderr
    with open(os.path.join(jd, "kernels", "runx-analysis", "kernel.json")) as f:
        spec = json.load(f)
    args = spec["argv"][1:-4]
    assert args[args.index("--with-requirements") + 1] == str(script)
    assert args[args.index("--python") + 1] == ">=3.8"
    assert spec["display_name"] == "Python (analysis.py, runx)"
    runx.wait_clean()


def test_kernel_errors_are_one_line_each(runx, jd, tmp_path):
    foreign = os.path.join(jd, "kernels", "python3")
    os.makedirs(foreign)
    with open(os.path.join(foreign, "kernel.json"), "w") as f:
        json.dump({"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                   "display_name": "Python 3", "language": "python"}, f)
    cases = [
        (["install", "--with", "runxdemo", "--name", "python3"], 1, "already exists"),
        (["remove", "python3"], 1, "not installed by runx"),
        (["remove", "nothing-here"], 1, "no kernel named nothing-here"),
        (["install", "--prefix", str(tmp_path / "missing"), "--with", "x"], 2,
         "no such directory"),
        (["install", "--with", "x", "--name", "a b"], 2, "kernel name"),
        (["install", "not-a-script.py"], 2, "not a script"),
        (["frobnicate"], 2, "unknown command"),
    ]
    for args, code, words in cases:
        p = kernel(runx, jd, *args)
        assert p.returncode == code, (args, p.stderr)
        one_error_line(p.stderr, words, hint=True)
    # A home that does not exist: no Jupyter data directory can be made.
    e = dict(runx.env, HOME=str(tmp_path / "no-home"))
    e.pop("JUPYTER_DATA_DIR", None)
    e.pop("XDG_DATA_HOME", None)
    p = subprocess.run([RUNX, "kernel", "install", "--with", "x"], capture_output=True,
                       text=True, env=e, timeout=60)
    assert p.returncode == 1
    one_error_line(p.stderr, "Jupyter data directory", hint=True)
    assert os.listdir(os.path.join(jd, "kernels")) == ["python3"]
    assert runtime_entries(runx.runtime) == []


# --- the kernel, run by jupyter_client -----------------------------------------


class Kernel:
    """A KernelManager and its blocking client, with the test's environment."""

    def __init__(self, runx, jd: str, name: str):
        self.ksm = KernelSpecManager(kernel_dirs=[os.path.join(jd, "kernels")])
        self.km = KernelManager(kernel_name=name, kernel_spec_manager=self.ksm)
        self.env = dict(runx.env)
        self.client = None

    def start(self):
        self.km.start_kernel(env=self.env)
        self._connect()

    def _connect(self):
        if self.client is not None:
            self.client.stop_channels()
        self.client = self.km.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)

    @property
    def pid(self) -> int:
        return self.km.provisioner.pid        # the process Jupyter started

    def run(self, code: str, timeout: float = 60) -> tuple:
        """(stdout text, reply content) of executing ``code``."""
        out = []

        def hook(msg):
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=hook)
        return "".join(out), reply["content"]

    def interrupt_sleep(self, how) -> float:
        """Start ``time.sleep(100)``, interrupt it with ``how()``; the seconds
        from the signal to the KeyboardInterrupt's reply."""
        c = self.client
        # stop_on_error=False: the interrupted cell's error must not make the
        # kernel abort the next request (ipykernel does, for a moment).
        msg_id = c.execute("import time; print('sleeping', flush=True); time.sleep(100)",
                           stop_on_error=False)
        deadline = time.monotonic() + 60
        while True:
            msg = c.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream" \
                    and "sleeping" in msg["content"]["text"]:
                break
        t0 = time.monotonic()
        # A SIGINT that lands while the kernel is still in its own output
        # machinery (the print's flush to iopub, before time.sleep starts) can
        # be swallowed there: seen once in a full-suite run (--tree fuse), the
        # cell then slept on. A user presses interrupt again; so does this test,
        # up to three times, 10 s apart. A signal runx lost would be lost every
        # time, and the test fails.
        reply = None
        for _ in range(3):
            how()
            deadline = time.monotonic() + 10
            while reply is None and time.monotonic() < deadline:
                try:
                    msg = c.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if msg["parent_header"].get("msg_id") == msg_id:
                    reply = msg
            if reply is not None:
                break
        if reply is None:
            pytest.fail(f"the kernel was not interrupted by {how.__name__} (3 tries)")
        took = time.monotonic() - t0
        assert reply["content"]["status"] == "error", reply["content"]
        assert reply["content"]["ename"] == "KeyboardInterrupt", reply["content"]
        return took

    def close(self):
        if self.client is not None:
            self.client.stop_channels()
        if self.km.has_kernel:
            self.km.shutdown_kernel(now=True)


@pytest.mark.parametrize("tree", ["dir", "fuse"])
def test_kernel_start_execute_interrupt_restart_shutdown_kill(runx, jd, tree):
    install(runx, jd, "--tree", tree, "--name", f"demo-{tree}")
    k = Kernel(runx, jd, f"demo-{tree}")
    try:
        k.start()
        out, reply = k.run("import os, sys, runxdemo; print(os.environ['RUNX_ENV'], os.getpid(), "
                           "sys.prefix)")
        assert reply["status"] == "ok", reply
        env, pid, prefix = out.split()
        assert int(pid) == k.pid, "the kernel is the process Jupyter started"
        assert prefix == env and env.startswith(runx.runtime + "/")

        # Interrupts: the process group (jupyter_client's own), then the PID only.
        k.interrupt_sleep(k.km.interrupt_kernel)

        def pid_only():
            os.kill(k.pid, signal.SIGINT)
        k.interrupt_sleep(pid_only)
        out, reply = k.run("print('still alive')")
        assert out == "still alive\n"

        # Restart: a fresh environment; the old one is removed.
        old_pid = k.pid
        k.km.restart_kernel(now=False)
        k._connect()
        out, _ = k.run("import os; print(os.environ['RUNX_ENV'])")
        assert k.pid != old_pid and out.strip() != env
        wait_until(lambda: not os.path.exists(env), 30, f"the old environment {env} removed")
        env = out.strip()

        # Shutdown: the last environment goes too.
        k.km.shutdown_kernel(now=False)
        wait_until(lambda: not os.path.exists(env), 30, f"{env} removed after shutdown")
        runx.wait_clean(30)

        # SIGKILL: nothing is left once it is dead (a new manager: the old
        # one's zmq context ended with its kernel).
        k.close()
        k = Kernel(runx, jd, f"demo-{tree}")
        k.start()
        out, _ = k.run("import os; print(os.environ['RUNX_ENV'])")
        env = out.strip()
        os.kill(k.pid, signal.SIGKILL)
        wait_until(lambda: not os.path.exists(env), 30, f"{env} removed after SIGKILL")
        k.km.shutdown_kernel(now=True)
        runx.wait_clean(30)
    finally:
        k.close()
