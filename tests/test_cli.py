"""Issue 7: everyday use — PEP 723 scripts and shebangs, -m, --env-file, the
uv options, progress and -v, one-line errors, shell completion."""

import json
import os
import pty
import re
import shutil
import subprocess

import pytest

from conftest import (RUNX, alive, build_wheel, layer_builds, one_error_line, reapers,
                      runtime_entries, wait_until)

from runner import cli, completion, dotenv, options, pep723
from runner.errors import UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def path_env(runx) -> dict:
    """runx's environment with runx itself on PATH (for shebangs and shells)."""
    return dict(runx.env, PATH=os.path.dirname(RUNX) + os.pathsep + runx.env.get("PATH", ""))


@pytest.fixture(scope="module")
def extra(tmp_path_factory) -> str:
    """A second hermetic wheel, ``runxextra``, with a __main__ for -m."""
    d = str(tmp_path_factory.mktemp("extra-wheels"))
    build_wheel(d, "runxextra", "2.0", files={
        "runxextra/__init__.py": "VALUE = 42\n",
        "runxextra/__main__.py": "import sys\nprint('runxextra main', sys.argv[1:])\n",
    }, scripts={})
    return d


SCRIPT = """\
# /// script
# requires-python = ">=3.8"
# dependencies = [
#   "runxdemo",
# ]
# ///
import json, os, sys
import runxdemo
print(json.dumps({"argv": sys.argv, "pid": os.getpid(), "prefix": sys.prefix,
                  "demo": runxdemo.VERSION}))
"""


# --- PEP 723 parsing (in process) --------------------------------------------

def test_pep723_block_is_read():
    m = pep723.parse(SCRIPT)
    assert m.found and m.dependencies == ["runxdemo"] and m.requires_python == ">=3.8"


def test_pep723_no_block_and_other_blocks_are_ignored():
    assert not pep723.parse("print('hi')\n").found
    text = "# /// pyproject\n# [tool.x]\n# a = 1\n# ///\nprint()\n"
    assert not pep723.parse(text).found


def test_pep723_closing_line_inside_content_follows_the_pep():
    # The PEP's own example: '# ///' lines inside the content do not end the
    # block while the next line is still a comment line.
    text = ('# /// script\n# dependencies = ["a"]\n# x = """\n# ///\n# """\n# ///\n\nprint()\n')
    m = pep723.parse(text)
    assert m.dependencies == ["a"]


def test_pep723_unclosed_block_is_ignored():
    m = pep723.parse('#!/bin/env -S runx\n# /// script\n# dependencies = ["a"]\nprint()\n')
    assert not m.found and m.dependencies == [] and m.unclosed.line == 2 and m.unclosed.stop_line == 4


def test_unclosed_block_warns_and_runs(runx, tmp_path):
    s = tmp_path / "open.py"
    s.write_text('# /// script\n# dependencies = ["runxdemo"]\nprint("ran")\n')
    r = runx.run(str(s))
    assert r.returncode == 0 and r.stdout == "ran\n"
    assert "warning" in r.stderr and "line 1" in r.stderr and "no closing" in r.stderr
    r = runx.run("-q", str(s))
    assert r.stderr == ""
    runx.wait_clean()


@pytest.mark.parametrize("text, words", [
    ('# /// script\n# dependencies = ["a"\n# ///\n', "malformed"),
    ('# /// script\n# dependencies = []\n# ///\nx = 1\n# /// script\n# dependencies = []\n# ///\n',
     "more than one"),
    ('# /// script\n# dependencies = "a"\n# ///\n', "list of strings"),
    ('# /// script\n# dependencies = [1]\n# ///\n', "list of strings"),
    ('# /// script\n# dependencies = ["--index-url=http://x"]\n# ///\n', "not a requirement"),
    ('# /// script\n# requires-python = 3.11\n# ///\n', "must be a string"),
    ('# /// script\n# requires-python = "3.11"\n# ///\n', "invalid requires-python"),
])
def test_pep723_malformed_blocks_are_usage_errors(text, words):
    with pytest.raises(UsageError) as e:
        pep723.parse(text, "x.py")
    assert words in e.value.message and e.value.code == 2


@pytest.mark.parametrize("version, spec, ok", [
    ("3.11.7", ">=3.10", True), ("3.11.7", ">=3.12", False), ("3.11.7", ">3.11", True),
    ("3.11.0", ">3.11", False), ("3.11.7", "<3.12", True), ("3.12.0", "<3.12", False),
    ("3.11.7", "<=3.11.7", True), ("3.11.8", "<=3.11.7", False),
    ("3.11.7", "==3.11.*", True), ("3.12.1", "==3.11.*", False),
    ("3.11.0", "==3.11", True), ("3.11.7", "==3.11", False),
    ("3.10.4", "!=3.10.*", False), ("3.11.4", "!=3.10.*", True), ("3.11.7", "!=3.11.7", False),
    ("3.11.7", "~=3.10", True), ("4.0.0", "~=3.10", False), ("3.9.9", "~=3.10", False),
    ("3.11.7", "~=3.11.2", True), ("3.12.0", "~=3.11.2", False),
    ("3.11.7", ">=3.9, <3.13", True), ("3.13.1", ">=3.9,<3.13", False),
    ("3.13.0", ">=3.13.0rc1", True), ("3.11.7", " >= 3.8 ", True), ("3.11.7", "===3.11.7", True),
])
def test_requires_python_specifiers(version, spec, ok):
    assert pep723.satisfies(version, spec) is ok


def test_requires_python_not_met_by_an_explicit_choice_warns(capsys):
    # uv run --python 3.10 script.py (requires >=3.12) warns and runs it: so does runx.
    m = pep723.Metadata([], ">=3.99", True)
    assert pep723.check_python(m, "3.11.7", "tool.py") is False
    err = capsys.readouterr().err
    assert err.startswith("runx: warning:") and ">=3.99" in err and "3.11.7" in err
    assert pep723.check_python(m, "3.11.7", "tool.py", verbosity=-1) is False
    assert capsys.readouterr().err == ""


# --- dotenv (in process) ----------------------------------------------------

def test_dotenv_format():
    text = ("# comment\n\nexport A=one\nB = 'single ${A} # kept'\n"
            'C="double\\n${A} \\${A}"  # comment\nD=plain value # comment\nE=a#b\n'
            "F=\nG\nH=${MISSING:-fallback}/${HOME_X}\nI='multi\nline'\nJ=${A}${A}\n")
    got = dotenv.parse(text, {"HOME_X": "/h"})
    assert got == {"A": "one", "B": "single ${A} # kept", "C": "double\none ${A}",
                   "D": "plain value", "E": "a#b", "F": "", "H": "fallback//h",
                   "I": "multi\nline", "J": "oneone"}


@pytest.mark.parametrize("text, words", [
    ("1X=2\n", "invalid variable name"),
    ("A B=2\n", "invalid variable name"),
    ("A='open\n", "unterminated"),
    ('A="x" y\n', "unexpected text"),
    ("A=${B\n", "unclosed"),
    ("not a line\n", "expected NAME=VALUE"),
])
def test_dotenv_errors_name_the_line(text, words):
    with pytest.raises(UsageError) as e:
        dotenv.parse("OK=1\n" + text, {}, "my.env")
    assert words in e.value.message and "my.env, line 2" in e.value.message


# --- what is a script (in process) -----------------------------------------

def test_script_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.py").write_text("print()\n")
    (tmp_path / "tool").write_text("#!/usr/bin/env -S runx --with rich\nprint()\n")
    (tmp_path / "other").write_text("#!/bin/sh\necho\n")
    assert cli.parse(["a.py", "x"]).command == ["python", "a.py", "x"]
    assert cli.parse([str(tmp_path / "tool"), "-v"]).command == ["python", str(tmp_path / "tool"), "-v"]
    o = cli.parse(["./other", "x"])
    assert o.command == ["./other", "x"] and o.script is None
    assert cli.parse(["python", "a.py"]).script is None, "only the first positional"
    with pytest.raises(UsageError) as e:
        cli.parse(["./missing.py"])
    assert e.value.code == 2 and "no such file" in e.value.message
    # A bare *.py name may be a console script of the environment (jp.py):
    # run() decides once the layer exists (tests/test_environment.py).
    o = cli.parse(["missing.py", "x"])
    assert o.command == ["missing.py", "x"] and o.script is None and o.py_command == "missing.py"


def test_module_option_ends_runx_options():
    o = cli.parse(["--with", "x", "-m", "http.server", "--bind", "-v", "8000"])
    assert o.command == ["python", "-m", "http.server", "--bind", "-v", "8000"]
    assert o.verbosity == 0
    assert cli.parse(["-mjson.tool"]).command == ["python", "-m", "json.tool"]
    with pytest.raises(UsageError):
        cli.parse(["-m"])


def test_internal_error_is_one_line(monkeypatch, capsys):
    def boom(o):
        raise ValueError("unexpected thing")
    monkeypatch.setattr(cli, "run", boom)
    monkeypatch.delenv("RUNX_DEBUG", raising=False)
    with pytest.raises(SystemExit) as e:
        cli.main(["python"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("runx: error: internal error: ValueError")


# --- scripts, end to end ----------------------------------------------------

def test_script_runs_with_its_dependencies(runx, tmp_path):
    s = tmp_path / "hello.py"
    s.write_text(SCRIPT)
    r = runx.run(str(s), "a", "--with", "-v", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["argv"] == [str(s), "a", "--with", "-v"]
    assert out["demo"] == "1.0" and out["prefix"].startswith(runx.runtime + "/")
    # a relative path, as typed
    r = runx.run("hello.py", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["argv"] == ["hello.py"]
    runx.wait_clean()


def test_script_dependencies_combine_with_with(runx, tmp_path, extra):
    s = tmp_path / "both.py"
    s.write_text('# /// script\n# dependencies = ["runxdemo"]\n# ///\n'
                 "import runxdemo, runxextra\nprint(runxdemo.VERSION, runxextra.VALUE)\n")
    r = runx.run("--find-links", extra, "--with", "runxextra", str(s))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1.0", "42"]
    runx.wait_clean()


def test_script_without_metadata_gets_no_packages(runx, tmp_path):
    s = tmp_path / "bare.py"
    s.write_text("import sys, importlib.util\n"
                 "print(importlib.util.find_spec('runxdemo') is None, sys.prefix)\n")
    r = runx.run("-v", str(s))
    assert r.returncode == 0, r.stderr
    missing, prefix = r.stdout.split()
    assert missing == "True" and prefix.startswith(runx.runtime + "/")
    assert "no extra packages" in r.stderr and "layer" not in r.stderr
    runx.wait_clean()


@pytest.mark.parametrize("with_block", [True, False])
def test_shebang_script_without_py_suffix(runx, tmp_path, with_block):
    s = tmp_path / "tool"
    block = '# /// script\n# dependencies = ["runxdemo"]\n# ///\n' if with_block else ""
    check = "import runxdemo\n" if with_block else ""
    s.write_text(f"#!/usr/bin/env -S runx --find-links {runx.wheelhouse} --no-index\n"
                 f"{block}{check}import json, os, sys\n"
                 "print(json.dumps({'argv': sys.argv, 'pid': os.getpid(), 'ppid': os.getppid(),"
                 " 'env': os.environ.get('RUNX_ENV')}))\n")
    s.chmod(0o755)
    p = subprocess.Popen([str(s), "one", "--two"], env=path_env(runx), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=str(tmp_path))
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    info = json.loads(out)
    assert info["argv"] == [str(s), "one", "--two"]
    assert info["pid"] == p.pid and info["ppid"] == os.getpid(), "env and runx both exec"
    assert info["env"].startswith(runx.runtime + "/")
    runx.wait_clean()


def test_shebang_script_with_py_suffix_via_path(runx, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    s = bindir / "greet.py"
    s.write_text(f"#!/usr/bin/env -S runx -f {runx.wheelhouse} --no-index\n{SCRIPT}")
    s.chmod(0o755)
    env = path_env(runx)
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    r = subprocess.run(["greet.py", "x"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["argv"] == [str(s), "x"]
    runx.wait_clean()


def test_requires_python_not_satisfied(runx, tmp_path):
    s = tmp_path / "future.py"
    s.write_text('# /// script\n# requires-python = ">=3.99"\n# ///\nprint("ran")\n')
    env = dict(runx.env, UV_PYTHON_DOWNLOADS="never")
    r = runx.run(str(s), env=env)
    assert r.returncode == 1
    line = one_error_line(r.stderr, alone=False)
    assert ">=3.99" in line and "future.py" in line and "--python" in line
    assert r.stdout == ""
    assert runtime_entries(runx.runtime) == [], "nothing may be made for a refused script"


def test_with_requirements_takes_a_script(runx, tmp_path, extra):
    s = tmp_path / "deps.py"
    s.write_text('# /// script\n# dependencies = ["runxextra"]\n# ///\n')
    req = tmp_path / "req.txt"
    req.write_text("runxdemo\n")
    r = runx.run("--find-links", extra, "--with-requirements", str(s),
                 "--with-requirements", str(req), "python", "-c",
                 "import runxdemo, runxextra; print(runxextra.VALUE)")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "42\n"
    runx.wait_clean()


def test_module_runs_like_python_m(runx, extra):
    r = runx.run("--find-links", extra, "--with", "runxextra", "-m", "runxextra", "a", "-v")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "runxextra main ['a', '-v']\n"
    r = runx.run("-m", "json.tool", input='{"a": [1]}')
    assert r.returncode == 0 and json.loads(r.stdout) == {"a": [1]}
    runx.wait_clean()


# --- --env-file --------------------------------------------------------------

def test_env_file_reaches_the_payload_only(runx, tmp_path):
    f = tmp_path / "app.env"
    f.write_text("# settings\nexport GREETING='hello world'\nRUNX_TREE=bogus\n"
                 'MULTI="a\\nb"\nPATH_SEEN=${HOME_FOR_TEST}\n')
    g = tmp_path / "later.env"
    g.write_text("GREETING=overridden\n")
    env = dict(runx.env, HOME_FOR_TEST="/home/x", GREETING="from caller")
    code = ("import json, os; print(json.dumps({k: os.environ.get(k) for k in "
            "('GREETING', 'RUNX_TREE', 'MULTI', 'PATH_SEEN')}))")
    r = runx.run("--env-file", str(f), "python", "-c", code, env=env)
    assert r.returncode == 0, r.stderr     # RUNX_TREE=bogus did not reach runx itself
    assert json.loads(r.stdout) == {"GREETING": "hello world", "RUNX_TREE": "bogus",
                                    "MULTI": "a\nb", "PATH_SEEN": "/home/x"}
    r = runx.run("--env-file", str(f), "--env-file", str(g), "python", "-c", code, env=env)
    assert json.loads(r.stdout)["GREETING"] == "overridden"
    runx.wait_clean()


# --- errors: one line, documented code, nothing made ------------------------

@pytest.mark.parametrize("case, code, words", [
    ("unknown option", 2, "unknown option --bogus"),
    ("flag with value", 2, "takes no value"),
    ("missing script", 2, "no such file"),
    ("bad toml", 2, "malformed"),
    ("two blocks", 2, "more than one"),
    ("unreadable requirements", 2, "requirements file"),
    ("unreadable script requirements", 2, "requirements file"),
    ("unreadable env file", 2, "env file"),
    ("malformed env file", 2, "line 1"),
    ("module without name", 2, "-m needs"),
    ("unknown python", 1, "--python"),
    ("unknown python version", 1, "--python 3.99"),
    ("unknown completion shell", 2, "unknown shell"),
    ("with an option", 2, "not a requirement"),
])
def test_user_errors(runx, tmp_path, case, code, words):
    bad = tmp_path / "bad.py"
    two = tmp_path / "two.py"
    bad.write_text('# /// script\n# dependencies = ["a",\n# ///\n')
    two.write_text("# /// script\n# dependencies = []\n# ///\nx = 1\n# /// script\n#\n# ///\n")
    envf = tmp_path / "bad.env"
    envf.write_text("what is this\n")
    args = {
        "unknown option": ["--bogus", "python"],
        "flag with value": ["--keep=yes", "python"],
        "missing script": [str(tmp_path / "nope.py")],
        "bad toml": [str(bad)],
        "two blocks": [str(two)],
        "unreadable requirements": ["--with-requirements", str(tmp_path), "python"],
        "unreadable script requirements": ["--with-requirements", str(tmp_path / "x.py"), "python"],
        "unreadable env file": ["--env-file", str(tmp_path / "none.env"), "python"],
        "malformed env file": ["--env-file", str(envf), "python"],
        "module without name": ["-m"],
        "unknown python": ["--python", "no-such-python-3.99", "python"],
        "unknown python version": ["--python", "3.99", "python"],
        "unknown completion shell": ["--completion", "tcsh"],
        "with an option": ["--with=--index-url=http://x", "python"],
    }[case]
    r = runx.run(*args)
    assert r.returncode == code, r.stderr
    line = one_error_line(r.stderr, alone=False)
    assert words in line, line
    assert re.fullmatch(r"runx: error: .+", line)
    assert r.stderr.count("\n") == 1, "one line, nothing else"
    assert r.stdout == ""
    assert runtime_entries(runx.runtime) == []


# --- the uv options and the layer cache --------------------------------------

def test_refresh_and_offline_with_the_layer_cache(runx, tmp_path):
    cache = str(tmp_path / "cache")
    runx.env["RUNX_CACHE_DIR"] = runx.cache = cache
    run = lambda *a, **kw: runx.run(*a, "--with", "runxdemo", "runxdemo", **kw)  # noqa: E731
    assert run().returncode == 0
    (key, (first,)), = layer_builds(cache).items()
    assert run().returncode == 0
    assert layer_builds(cache) == {key: [first]}, "a warm run reuses the layer"
    r = run("--refresh")
    assert r.returncode == 0, r.stderr
    second = [b for b in layer_builds(cache)[key] if b != first]
    assert len(second) == 1, "--refresh builds a new layer beside the old one"
    assert os.readlink(os.path.join(cache, "layers", key, "current")) == second[0]
    # Stale (RUNX_FRESHNESS=0): --offline still uses the cached build…
    stale = dict(runx.env, RUNX_FRESHNESS="0")
    r = run("--offline", "-v", env=stale)
    assert r.returncode == 0, r.stderr
    assert "layer hit" in r.stderr and len(layer_builds(cache)[key]) == 2
    # …while an online run re-resolves it.
    r = run("-v", env=stale)
    assert r.returncode == 0 and "layer miss" in r.stderr
    assert len(layer_builds(cache)[key]) == 3
    runx.wait_clean()


def test_offline_without_a_cached_layer_explains(runx, tmp_path):
    runx.env["RUNX_CACHE_DIR"] = runx.cache = str(tmp_path / "cache")
    r = runx.run("--offline", "--index-url", "http://127.0.0.1:9/simple", "--with",
                 "runxdemo", "python", "-c", "pass", local=False)
    assert r.returncode == 1
    assert "runxdemo" in r.stderr, "uv's explanation is shown"
    assert "uv exited" in one_error_line(r.stderr, alone=False)
    runx.wait_clean()


def simple_index(root, wheel_dir: str, names: list) -> str:
    """A PEP 503 index on disk: file:///…/simple/<name>/ → the wheels."""
    simple = root / "simple"
    for name in names:
        d = simple / name
        d.mkdir(parents=True)
        links = "".join(f'<a href="file://{os.path.join(wheel_dir, w)}">{w}</a>\n'
                        for w in os.listdir(wheel_dir) if w.startswith(name + "-"))
        (d / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")
    return "file://" + str(simple)


def test_index_url_and_extra_index_url(runx, tmp_path, extra):
    main = simple_index(tmp_path / "main", runx.wheelhouse, ["runxdemo"])
    more = simple_index(tmp_path / "more", extra, ["runxextra"])
    code = "import runxdemo, runxextra; print(runxdemo.VERSION, runxextra.VALUE)"
    r = runx.run("--index-url", main, "--extra-index-url", more, "--with", "runxdemo,runxextra",
                 "python", "-c", code, local=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1.0", "42"]
    r = runx.run("--index-url", main, "--with", "runxextra", "python", "-c", "pass", local=False)
    assert r.returncode == 1, "without the extra index runxextra is not found"
    runx.wait_clean()


def test_keep_prints_the_path_and_gc_kept_removes_it(runx):
    r = runx.run("--keep", "python", "-c", "import os; print(os.environ['RUNX_ENV'])")
    assert r.returncode == 0, r.stderr
    tree = r.stdout.strip()
    assert f"runx: keeping {tree}" in r.stderr
    wait_until(lambda: not any(alive(p) for p in reapers(runx.runtime)), 10, "reaper to finish")
    assert os.path.isdir(tree), "--keep leaves the tree"
    g = subprocess.run([RUNX, "gc"], env=runx.env, capture_output=True, text=True, timeout=60)
    assert os.path.isdir(tree), "plain gc leaves kept trees alone"
    g = subprocess.run([RUNX, "gc", "--kept"], env=runx.env, capture_output=True, text=True,
                       timeout=60)
    assert g.returncode == 0 and tree in g.stdout
    assert not os.path.exists(tree)
    runx.wait_clean()


# --- progress and verbosity --------------------------------------------------

def run_on_pty(argv, env, timeout=120) -> tuple:
    """Run with stdin/stdout/stderr on a new pty; (returncode, output)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                         close_fds=True, start_new_session=True)
    os.close(slave)
    out = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:       # EIO: the other side is closed
            break
        if not data:
            break
        out += data
    os.close(master)
    return p.wait(timeout=timeout), out.decode(errors="replace")


def test_cold_build_progress_only_on_a_terminal(runx, tmp_path):
    code = "print('payload-ran')"
    # On a terminal: uv's progress.
    runx.env["RUNX_CACHE_DIR"] = runx.cache = str(tmp_path / "c1")
    rc, out = run_on_pty(runx.argv("--with", "runxdemo", "python", "-c", code), runx.env)
    assert rc == 0, out
    assert "Installed" in out and "runxdemo" in out and "payload-ran" in out
    # -q on a terminal: nothing but the payload.
    runx.env["RUNX_CACHE_DIR"] = runx.cache = str(tmp_path / "c2")
    rc, out = run_on_pty(runx.argv("-q", "--with", "runxdemo", "python", "-c", code), runx.env)
    assert rc == 0
    assert out.strip() == "payload-ran"
    # stderr not a terminal: one summary line (tests/test_options.py checks it
    # in detail); with -q nothing; warm: nothing.
    runx.env["RUNX_CACHE_DIR"] = runx.cache = str(tmp_path / "c3")
    r = runx.run("--with", "runxdemo", "python", "-c", code)
    assert r.returncode == 0 and r.stdout == "payload-ran\n"
    assert re.fullmatch(r"runx: installed 1 package in [0-9.]+s \(runxdemo==1.0\)\n", r.stderr)
    r = runx.run("--with", "runxdemo", "python", "-c", code)
    assert r.returncode == 0 and r.stderr == ""
    runx.env["RUNX_CACHE_DIR"] = runx.cache = str(tmp_path / "c4")
    r = runx.run("-q", "--with", "runxdemo", "python", "-c", code)
    assert r.returncode == 0 and r.stderr == ""
    runx.wait_clean()


def test_verbose_explains_each_step(runx, tmp_path):
    runx.env["RUNX_CACHE_DIR"] = runx.cache = str(tmp_path / "cache")
    code = "import os, sys; print(os.getpid(), flush=True); sys.stdin.readline()"
    p = runx.popen("-v", "--with", "runxdemo", "python", "-c", code, stdin=subprocess.PIPE,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid = int(p.stdout.readline())
    assert pid == p.pid
    lines = []
    while not lines or not lines[-1].startswith("runx: exec"):
        lines.append(p.stderr.readline())
        assert lines[-1], "".join(lines)
    text = "".join(lines)
    assert "runx: interpreter:" in text
    assert "layer miss" in text
    tree = re.search(r"runx: tree: (\S+) ", text).group(1)
    assert tree.startswith(runx.runtime + "/")
    m = re.search(r"runx: reaper: pid (\d+) .*waits for pid (\d+) .*via (\w+)", text)
    assert m, text
    reaper, watched = int(m.group(1)), int(m.group(2))
    assert watched == p.pid
    with open(f"/proc/{reaper}/comm") as f:
        assert f.read().strip() == "runx-reaper", "the pid -v printed is the reaper"
    p.communicate("\n", timeout=30)
    r = runx.run("-v", "--with", "runxdemo", "python", "-c", "pass")
    assert "layer hit" in r.stderr
    runx.wait_clean()


def test_reaper_pid_pipe_only_with_verbose(runx, tmp_path):
    """-v learns the reaper's pid over a pipe; a plain run makes no pipe at all
    (Linux pidfd: no handshake either)."""
    from reaper import watch

    if not shutil.which("strace"):
        pytest.skip("strace not installed")
    if watch.NEEDS_ARMING:
        pytest.skip("this platform's watcher needs a handshake pipe anyway")

    def pipes(*args) -> int:
        log = tmp_path / "strace.log"
        r = subprocess.run(["strace", "-f", "-qq", "-e", "trace=pipe,pipe2", "-o", str(log),
                            *runx.argv(*args, "--with", "runxdemo", "python", "-c", "pass")],
                           env=runx.env, capture_output=True, text=True, timeout=120)
        if r.returncode != 0 and "ptrace" in r.stderr:
            pytest.skip(f"strace cannot trace here: {r.stderr.strip()}")
        assert r.returncode == 0, r.stderr
        return sum(1 for ln in log.read_text().splitlines() if re.search(r"\bpipe2?\(", ln))
    pipes()                                    # warm the layer
    assert pipes() == 0
    assert pipes("-v") == 1
    runx.wait_clean()


# --- help, README and completion --------------------------------------------

def all_options() -> set:
    return {n for names, _, _ in completion.OPTIONS for n in names}


def test_completion_table_matches_the_parser():
    # Both come from runner.options now; tests/test_options.py checks the
    # parser takes every option of the table with or without a value as it says.
    assert all_options() == {n for opt in options.OPTIONS for n in opt.names}
    for names, kind, _ in completion.OPTIONS:
        assert all((cli._table()[n].metavar is not None) == (kind is not None) for n in names)


def test_help_and_readme_document_every_option_and_exit_code():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    options = readme.split("## Options", 1)[1].split("### Where things live", 1)[0]
    for opt in all_options():
        assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", cli.HELP), f"--help lacks {opt}"
        assert f"`{opt}" in options or f"{opt}`" in options, f"README Options lacks {opt}"
    for code in ("1", "2", "126", "127"):
        assert re.search(rf"^\| {code} \|", options, re.M), f"README exit status lacks {code}"
        assert re.search(rf"^  {code} ", cli.HELP, re.M), f"--help exit status lacks {code}"


def bash_complete(script: str, words: list, env=None) -> list:
    """COMPREPLY for completing the last of ``words`` (runx first)."""
    arr = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    prog = (f"{script}\nCOMP_WORDS=({arr}); COMP_CWORD={len(words) - 1}; "
            f"COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; _runx; "
            "printf '%s\\n' \"${COMPREPLY[@]}\"")
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", prog], capture_output=True,
                       text=True, timeout=30, env=env)
    assert r.returncode == 0, r.stderr
    return [ln for ln in r.stdout.splitlines() if ln]


def test_bash_completion(runx, tmp_path):
    r = subprocess.run([RUNX, "--completion", "bash"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == ""
    script = r.stdout
    shown = subprocess.run(["bash", "--norc", "--noprofile", "-c",
                            'eval "$(runx --completion bash)" && complete -p runx'],
                           env=path_env(runx), capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert "-F _runx" in shown.stdout and shown.stdout.strip().endswith(" runx")
    assert bash_complete(script, ["runx", "--tr"]) == ["--tree"]
    assert sorted(bash_complete(script, ["runx", "--tree", ""])) == ["dir", "fuse"]
    assert sorted(bash_complete(script, ["runx", "--tree", "=", ""])) == ["dir", "fuse"]
    assert sorted(bash_complete(script, ["runx", "--with-r"])) == ["--with-requirements"]
    assert sorted(bash_complete(script, ["runx", "--completion", "z"])) == ["zsh"]
    assert sorted(bash_complete(script, ["runx", "gc", "--"])) == ["--dry-run", "--kept"]
    assert sorted(bash_complete(script, ["runx", "cache", "p"])) == ["prune"]
    assert "gc" in bash_complete(script, ["runx", "--keep", "g"])
    (tmp_path / "myscript.py").write_text("")
    files = bash_complete(f"cd {tmp_path}\n{script}", ["runx", "--with-requirements", "mys"])
    assert files == ["myscript.py"]
    assert "myscript.py" in bash_complete(f"cd {tmp_path}\n{script}", ["runx", "-q", "mys"])


def test_zsh_completion_loads():
    if not shutil.which("zsh"):
        pytest.skip("zsh not installed (apt-get install zsh)")
    script = completion.script("zsh")
    r = subprocess.run(["zsh", "-n"], input=script, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    prog = f"autoload -U compinit && compinit -u -D\n{script}\nprint -r -- $_comps[runx]"
    r = subprocess.run(["zsh", "-f", "-c", prog], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "_runx"


def test_zsh_completion_completes_interactively(tmp_path):
    """An interactive zsh on a pty: TAB after `runx --tree ` offers dir and fuse."""
    if not shutil.which("zsh"):
        pytest.skip("zsh not installed (apt-get install zsh)")
    import select
    import time

    script = tmp_path / "_runx.zsh"
    script.write_text(completion.script("zsh"))
    master, slave = pty.openpty()
    p = subprocess.Popen(["zsh", "-f", "-i"], stdin=slave, stdout=slave, stderr=slave,
                         env=dict(os.environ, TERM="dumb", PS1="> "), start_new_session=True)
    os.close(slave)
    out = b""

    def read_until(marker: bytes, timeout: float = 20) -> bytes:
        nonlocal out
        deadline = time.monotonic() + timeout
        while marker not in out:
            left = deadline - time.monotonic()
            assert left > 0, f"zsh never printed {marker!r}: {out[-500:]!r}"
            if select.select([master], [], [], left)[0]:
                out += os.read(master, 65536)
        return out
    try:
        os.write(master, b"autoload -U compinit; compinit -u -D; source " + str(script).encode()
                 + b"; print READY$((6*7))\n")
        read_until(b"READY42")
        os.write(master, b"runx --tree \t")
        text = read_until(b"fuse").decode(errors="replace")
        assert "dir" in text.split("READY42", 1)[1]
    finally:
        p.kill()
        p.wait()
        os.close(master)


def test_fish_completion_loads():
    if not shutil.which("fish"):
        pytest.skip("fish not installed (apt-get install fish)")
    script = completion.script("fish")
    r = subprocess.run(["fish", "-n"], input=script, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    prog = f"{script}\ncomplete -C 'runx --tr'\ncomplete -C 'runx --tree '\ncomplete -C 'runx g'"
    r = subprocess.run(["fish", "--no-config", "-c", prog], capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, HOME=os.environ.get("HOME", "/root")))
    assert r.returncode == 0, r.stderr
    got = [ln.split("\t")[0] for ln in r.stdout.splitlines()]
    assert "--tree" in got and "dir" in got and "fuse" in got and "gc" in got
