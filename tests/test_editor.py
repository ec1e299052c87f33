"""``runx editor``: a stable interpreter path for a script (or requirement
set) that an editor is configured with once. It imports the script's
dependencies; after the script's block changes and runx runs it (or
``runx editor`` is asked again) the same path imports the new ones; ``runx
ls`` lists it; ``--remove`` and the cache's expiry remove it."""

import os
import subprocess

from conftest import RUNX, one_error_line, reapers, runtime_entries

BLOCK = '# /// script\n# dependencies = [{deps}]\n# ///\nimport runxdemo\nprint("ran")\n'


def editor(r, extra: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([RUNX, "editor", "--find-links", r.wheelhouse, "--find-links", extra,
                           "--no-index", *args], capture_output=True, text=True, timeout=120,
                          env=r.env)


def python(path: str, code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return subprocess.run([path, "-c", code], capture_output=True, text=True, timeout=60,
                          env=env)


def test_editor_interpreter_follows_the_script(cold, extra, tmp_path):
    script = tmp_path / "app.py"
    script.write_text(BLOCK.format(deps='"runxdemo"'))
    p = editor(cold, extra, str(script))
    assert p.returncode == 0, p.stderr
    path = p.stdout.strip()
    assert path.startswith(os.path.join(cold.cache, "editors") + "/")
    assert path.endswith("/bin/python") and os.path.isabs(path)
    assert runtime_entries(cold.runtime) == [] and reapers(cold.runtime) == []
    q = python(path, "import sys, runxdemo; print(sys.prefix); import runxextra")
    assert "No module named 'runxextra'" in q.stderr, q.stderr
    assert q.stdout.strip() == os.path.dirname(os.path.dirname(path))

    # The block changes; a run of the script builds the new layer and
    # brings the editor's interpreter along: same path, new contents.
    script.write_text(BLOCK.format(deps='"runxdemo", "runxextra"'))
    run = cold.run("--find-links", extra, str(script))
    assert run.returncode == 0 and run.stdout == "ran\n", run.stderr
    q = python(path, "import runxdemo, runxextra; print(runxextra.VALUE)")
    assert q.returncode == 0 and q.stdout == "42\n", q.stderr

    # And back, asked explicitly: the same path again.
    script.write_text(BLOCK.format(deps='"runxdemo"'))
    p = editor(cold, extra, str(script))
    assert p.returncode == 0 and p.stdout.strip() == path, p.stderr
    assert python(path, "import runxextra").returncode != 0
    assert python(path, "import runxdemo").returncode == 0

    ls = subprocess.run([RUNX, "ls"], capture_output=True, text=True, env=cold.env)
    assert path in ls.stdout and str(script) in ls.stdout and "ready" in ls.stdout

    # Removed by the same command line with --remove (anywhere among the options).
    p = editor(cold, extra, "--remove", str(script))
    assert p.returncode == 0, p.stderr
    assert not os.path.exists(path)
    assert os.listdir(os.path.join(cold.cache, "editors")) == []
    p = subprocess.run([RUNX, "editor", "--remove", str(script)], capture_output=True,
                       text=True, env=cold.env)
    assert p.returncode == 1
    one_error_line(p.stderr, "no editor interpreter", hint=True)
    cold.wait_clean()


def test_editor_interpreter_for_requirements_expires_with_its_layer(cold, extra):
    p = editor(cold, extra, "--with", "runxextra")
    assert p.returncode == 0, p.stderr
    path = p.stdout.strip()
    assert python(path, "import runxextra").returncode == 0
    # Asked again: the same path (the layer is not rebuilt).
    assert editor(cold, extra, "--with", "runxextra").stdout.strip() == path
    # Nothing uses the layer for longer than the cache's max age: it expires,
    # and the editor's interpreter with it.
    p = subprocess.run([RUNX, "cache", "prune"], capture_output=True, text=True,
                       env=dict(cold.env, RUNX_CACHE_MAX_AGE="0"))
    assert p.returncode == 0, p.stderr
    assert not os.path.exists(path), p.stdout
    assert not os.path.exists(os.path.join(cold.cache, "editors"))
    ls = subprocess.run([RUNX, "ls"], capture_output=True, text=True, env=cold.env)
    assert path not in ls.stdout
    cold.wait_clean()


def test_editor_errors(cold):
    p = subprocess.run([RUNX, "editor"], capture_output=True, text=True, env=cold.env)
    assert p.returncode == 2
    one_error_line(p.stderr, "no script or requirements", hint=True)
    h = subprocess.run([RUNX, "editor", "--help"], capture_output=True, text=True, env=cold.env)
    assert h.returncode == 0 and h.stdout.startswith("usage: runx editor")
