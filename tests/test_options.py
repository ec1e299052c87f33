"""The option table (runx_env.runner.options) against everything it drives (parser,
--help, completion, README) and against uv's own option lists; uv options
passed through and part of the layer's identity; did-you-mean; --directory;
the cold-build summary line."""

import os
import re
import subprocess
import sys

import pytest

from conftest import RUNX, one_error_line
from runx_env.runner import completion, helptext, options
from runx_env.errors import UsageError
from runx_env.runner.requirements import Spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UV = os.path.join(os.path.dirname(sys.executable), "uv")
UVX = os.path.join(os.path.dirname(sys.executable), "uvx")
NAMES = [n for opt in options.OPTIONS for n in opt.names]
# A value each valued option accepts (and uv accepts, for those passed to uv).
SAMPLE = {"FILE": None, "DIR": None, "URL": "https://example.invalid/simple", "DATE": "2024-01-01",
          "PKG=DATE": "runxdemo=2024-01-01", "PKG=MODE": "runxdemo=allow", "PKG": "runxdemo",
          "KEY=VALUE": "k=v", "PKG:KEY=VALUE": "runxdemo:k=v", "HOST": "example.invalid",
          "BACKEND": "cpu", "PY": "3.11", "SPEC": "runxdemo", "REQ": "runxdemo",
          "MODULE": "json.tool", "SHELL": "bash", "PATH": ".", "MODE": None}


def sample(opt, tmp_path) -> str:
    if isinstance(opt.kind, tuple):
        return opt.kind[0]
    if opt.kind == "tree":
        return "dir"
    if opt.kind == "file":
        f = tmp_path / "opt-file.txt"
        f.write_text("")
        return str(f)
    if opt.kind == "dir":
        return str(tmp_path)
    return SAMPLE[opt.metavar]


# --- the table drives --help, completion and the README ----------------------

@pytest.mark.fast
def test_no_option_twice_and_every_field_sane():
    assert len(NAMES) == len(set(NAMES))
    for opt in options.OPTIONS:
        assert opt.to in ("runx", "layer", "uv", "python"), opt.names
        assert opt.help and "\n" not in opt.help
        assert all(n.startswith("--") or re.fullmatch(r"-[A-Za-z]", n) for n in opt.names)
    assert not set(NAMES) & set(options.NOT_TAKEN)


@pytest.mark.fast
@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_every_option_is_in_help_completion_and_readme(shell):
    text = helptext.help_text()
    script = completion.script(shell)
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    block = readme.split(options.README_BEGIN, 1)[1].split(options.README_END, 1)[0]
    for opt in options.OPTIONS:
        for n in opt.names:
            word = rf"(?<![\w-]){re.escape(n)}(?![\w-])"
            assert re.search(word, text), f"--help lacks {n}"
            if shell == "fish":        # fish spells them -l NAME / -s X
                flag = f"-l {n[2:]}" if n.startswith("--") else f"-s {n[1:]}"
                assert flag in script, f"fish completion lacks {n}"
            else:
                assert re.search(word, script), f"{shell} completion lacks {n}"
            assert f"`{n}" in block, f"README option list lacks {n}"
        if isinstance(opt.kind, tuple):   # choices are completed
            assert " ".join(opt.kind) in script, (shell, opt.names)
    for n in options.NOT_TAKEN:
        assert f"`{n}`" in block, f"README lacks the not-taken {n}"


@pytest.mark.fast
def test_readme_block_is_generated_from_the_table():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    assert options.readme_table() in readme, "run scripts/readme-options"


@pytest.mark.fast
def test_the_parser_takes_every_option_as_the_table_says(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for opt in options.OPTIONS:
        if opt.dest in ("help", "version", "completion"):
            continue
        for n in opt.names:
            args = [n] if opt.metavar is None else [n, sample(opt, tmp_path)]
            command = {"module": [], "as_script": [sample(options.by_name()["--env-file"],
                                                           tmp_path)]}.get(opt.dest, ["python"])
            o = options.parse(args + command)
            if opt.to == "layer":
                assert o.uv_options, n
            elif opt.to == "uv":
                assert o.uv_run_args and o.refresh == opt.refresh, n
            elif opt.to == "python":
                assert o.uv_python_args[0] == opt.name, n
            if opt.metavar is None and n.startswith("--"):
                with pytest.raises(UsageError, match="takes no value"):
                    options.parse([f"{n}=x"] + command)
            elif opt.metavar is not None:
                with pytest.raises(UsageError, match="needs a value"):
                    options.parse([n])


def test_help_version_completion_exit_zero():
    for args in (["-h"], ["--help"], ["-V"], ["--version"], ["--completion", "fish"]):
        r = subprocess.run([RUNX, *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout and r.stderr == "", args


# --- the table against uv's own option lists ----------------------------------

def uv_options(*cmd) -> set:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    found = set()
    for line in out.splitlines():
        m = re.match(r"\s+(?:(-[A-Za-z]), )?(--[a-z][a-z0-9-]*)", line)
        if m:
            found.update(x for x in m.groups() if x)
        else:
            m = re.match(r"\s+(-[A-Za-z])\s", line)
            if m:
                found.add(m.group(1))
    return found


@pytest.mark.parametrize("cmd", [[UV, "run", "--help"], [UVX, "--help"]])
def test_every_uv_option_is_taken_or_refused_with_a_reason(cmd):
    """A uv upgrade that adds an option fails here until it is in the table or
    in NOT_TAKEN with its reason."""
    theirs = uv_options(*cmd)
    assert len(theirs) > 60, theirs           # the help parsed at all
    missing = theirs - set(NAMES) - set(options.NOT_TAKEN)
    assert not missing, f"uv options neither in runner/options.py nor NOT_TAKEN: {missing}"


def test_not_taken_options_give_their_reason_in_one_line():
    for name, reason in options.NOT_TAKEN.items():
        with pytest.raises(UsageError) as e:
            options.parse([name, "python"])
        assert e.value.message == f"{name}: {reason}"
    r = subprocess.run([RUNX, "--isolated", "--with", "x", "python"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and r.stdout == ""
    assert one_error_line(r.stderr).startswith(
        "runx: error: --isolated: runx environments are always isolated (")


def test_uv_spells_every_passed_option_as_runx_passes_it(tmp_path):
    """Each option runx hands to `uv pip install`, in the spelling runx uses,
    is accepted by the uv runx runs (a dry run, offline)."""
    (tmp_path / "uv.toml").write_text("")
    for opt in options.OPTIONS:
        if opt.to not in ("layer", "uv"):
            continue
        value = str(tmp_path / "uv.toml") if opt.name == "--config-file" else (
            sample(opt, tmp_path) if opt.metavar else None)
        o = options.parse([opt.name] + ([value] if value else []) + ["python"])
        args = o.uv_options + o.uv_run_args
        r = subprocess.run([UV, "pip", "install", "--dry-run", "--offline", "--python",
                            sys.executable, "--no-index", *args, "pip"],
                           capture_output=True, text=True, timeout=60)
        assert "unexpected argument" not in r.stderr and "invalid value" not in r.stderr, (
            opt.name, args, r.stderr)


# --- passed to uv, and part of the layer's identity -----------------------------

@pytest.mark.fast
def test_layer_options_are_hashed_in_order_and_passed_last():
    a = Spec(["x"], uv_options=["--resolution", "lowest"])
    assert a.digest() != Spec(["x"]).digest()
    assert a.digest() == Spec(["x"], uv_options=["--resolution", "lowest"]).digest()
    assert a.digest() != Spec(["x"], uv_options=["--resolution", "highest"]).digest()
    assert (Spec(["x"], uv_options=["--index", "a", "--index", "b"]).digest()
            != Spec(["x"], uv_options=["--index", "b", "--index", "a"]).digest())
    assert a.uv_args() == ["--resolution", "lowest", "x"]
    o = options.parse(["--no-binary-package", "a", "--no-build-package", "b", "--no-binary",
                   "python"])
    assert o.uv_options == ["--no-binary", "a", "--only-binary", "b", "--no-binary", ":all:"]


@pytest.mark.fast
def test_constraints_file_content_is_identity(tmp_path):
    c = tmp_path / "c.txt"
    c.write_text("x<2\n")
    first = Spec(["x"], uv_options=["--constraints", str(c)]).digest()
    c.write_text("x<3\n")
    assert Spec(["x"], uv_options=["--constraints", str(c)]).digest() != first


def test_resolver_options_reach_uv_and_name_their_layer(runx, tmp_path):
    from conftest import build_wheel

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(str(wheels), "pickme", "1.0", scripts={})
    build_wheel(str(wheels), "pickme", "2.0", scripts={})
    runx.env["RUNX_CACHE_DIR"] = runx.cache = str(tmp_path / "cache")
    show = "import importlib.metadata as m; print(m.version('pickme'))"

    def run(*args):
        r = runx.run("-f", str(wheels), "--no-index", *args, "python", "-c", show, local=False)
        assert r.returncode == 0, r.stderr
        return r
    assert run("--with", "pickme>=1").stdout == "2.0\n"
    assert run("--resolution", "lowest", "--with", "pickme>=1").stdout == "1.0\n"
    assert run("--with", "pickme>=1").stdout == "2.0\n", "--resolution has its own layer"
    cons = tmp_path / "cons.txt"
    cons.write_text("pickme<2\n")
    assert run("-c", str(cons), "--with", "pickme").stdout == "1.0\n"
    layers = os.listdir(os.path.join(runx.cache, "layers"))
    assert len([k for k in layers if not k.startswith(".")]) == 3, layers
    # --reinstall / --upgrade rebuild the same layer now instead of naming a new one.
    r = run("--with", "pickme>=1")
    assert r.stderr == ""                               # warm
    r = run("--reinstall", "--with", "pickme>=1")
    assert r.stdout == "2.0\n" and "installed 1 package" in r.stderr
    r = run("-U", "--with", "pickme>=1")
    assert "installed 1 package" in r.stderr
    assert len([k for k in os.listdir(os.path.join(runx.cache, "layers"))
                if not k.startswith(".")]) == 3
    runx.wait_clean()


@pytest.mark.fast
def test_python_options_are_collected_for_the_interpreter_lookup():
    o = options.parse(["--managed-python", "--python-preference", "system",
                   "--no-python-downloads", "python"])
    assert o.uv_python_args == ["--managed-python", "--python-preference", "system",
                                "--no-python-downloads"]
    assert o.uv_options == [] and o.uv_run_args == []


# --- messages -------------------------------------------------------------------

@pytest.mark.parametrize("typed, meant", [("--wiht", "--with"), ("--exclude-newr", "--exclude-newer"),
                                          ("--no-indx", "--no-index"), ("--pyton", "--python"),
                                          ("--with-requirement", "--with-requirements")])
def test_did_you_mean(typed, meant):
    r = subprocess.run([RUNX, typed, "x", "python"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and r.stdout == ""
    assert one_error_line(r.stderr) == f"runx: error: unknown option {typed} (did you mean {meant}?)"


def test_no_suggestion_when_nothing_is_close():
    r = subprocess.run([RUNX, "--zzzzqqq", "python"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert "did you mean" not in line and "unknown option --zzzzqqq" in line


@pytest.mark.fast
def test_summary_line_counts_and_names_what_uv_installed():
    from runx_env.runner import uv

    out = "Resolved 7 packages in 5ms\nInstalled 7 packages in 4ms\n" + "".join(
        f" + p{i}==1.{i}\n" for i in range(7))
    assert uv._summary(out, 1.23) == ("runx: installed 7 packages in 1.2s (p0==1.0, p1==1.1, "
                                      "p2==1.2, p3==1.3, p4==1.4, and 2 more)\n")
    assert uv._summary(" + a==1\n", 0.04) == "runx: installed 1 package in 0.0s (a==1)\n"


# --- --directory ------------------------------------------------------------------

def test_directory_changes_dir_before_anything(runx, tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "reqs.txt").write_text("runxdemo\n")
    (sub / "hello.py").write_text("import os, runxdemo; print(os.getcwd())\n")
    r = runx.run("--directory", str(sub), "--with-requirements", "reqs.txt", "hello.py",
                 cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{sub}\n"
    r = runx.run("--directory", str(tmp_path / "nope"), "python", cwd=str(tmp_path))
    assert r.returncode == 2
    assert "--directory" in one_error_line(r.stderr)
    runx.wait_clean()


def test_bash_completes_choices_and_new_options():
    script = completion.script("bash")

    def complete(*words):
        arr = " ".join("'" + w + "'" for w in words)
        prog = (f"{script}\nCOMP_WORDS=({arr}); COMP_CWORD={len(words) - 1}; _runx; "
                "printf '%s\\n' \"${COMPREPLY[@]}\"")
        r = subprocess.run(["bash", "--norc", "--noprofile", "-c", prog], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return sorted(ln for ln in r.stdout.splitlines() if ln)
    assert complete("runx", "--prerelease", "if") == ["if-necessary", "if-necessary-or-explicit"]
    assert complete("runx", "--resolution", "") == ["highest", "lowest", "lowest-direct"]
    assert complete("runx", "--exclude-n") == ["--exclude-newer", "--exclude-newer-package"]
    assert complete("runx", "--exclude-newer", "") == []          # a date: nothing to offer


# --- fuzzing the command line (issue 21: no input gives a traceback) ----------

def _forms(opt, tmp_path):
    """How an option can be typed: alone, with its value, without it, with =."""
    n = opt.names[-1]
    if opt.metavar is None:
        return [[n], [f"{n}=x"]]
    v = sample(opt, tmp_path)
    return [[n], [n, v], [f"{n}={v}"], [n, ""], [n, "-"]]


@pytest.mark.fast
def test_fuzz_the_parser_in_process(tmp_path, monkeypatch):
    """Every option alone, with each other, without its value, with and
    without a command, in tool mode and not: parse returns or raises a
    UsageError, nothing else."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.py").write_text("print()\n")
    tails = [[], ["python"], ["ruff"], ["python@3.12"], ["s.py"], ["-"], ["--"], ["--", "x"],
             ["nope.py"], ["x @ https://e.org/x.whl"], ["ruff@"], ["python@latest"]]
    seen = 0
    for a in options.OPTIONS:
        for form in _forms(a, tmp_path):
            for tail in tails:
                _parse_or_usage_error(form + tail)
                seen += 1
            for b in options.OPTIONS:
                for tail in ([], ["ruff"]):
                    _parse_or_usage_error(form + _forms(b, tmp_path)[min(1, len(
                        _forms(b, tmp_path)) - 1)] + tail)
                    seen += 1
            monkeypatch.chdir(tmp_path)      # --directory moved it
    assert seen > 10000


def _parse_or_usage_error(argv):
    try:
        options.parse(argv)
    except UsageError:
        pass
    except Exception as e:        # the test's failure: say which input
        raise AssertionError(f"{argv}: {type(e).__name__}: {e}") from e


def test_fuzz_the_command_line_end_to_end(runx, tmp_path):
    """runx itself on every option alone, with its value but no command, and
    after --with/--from with no command (the IndexError of issue 21): a
    documented exit status, at most one error line, never an internal error
    or a traceback, nothing left behind."""
    from concurrent.futures import ThreadPoolExecutor

    argvs = [["--with", "runxdemo", "--from", "runxdemo"], ["--from", "runxdemo"], ["-qq"],
             ["-vv"], ["--locked", "--with", "runxdemo"], ["--script"], ["-s", "-"]]
    for opt in options.OPTIONS:
        if opt.dest in ("help", "version", "completion", "tree"):
            continue
        forms = _forms(opt, tmp_path)
        argvs += [forms[0], forms[min(1, len(forms) - 1)],
                  ["--with", "runxdemo", *forms[min(1, len(forms) - 1)]],
                  ["--from", "runxdemo", *forms[min(1, len(forms) - 1)]]]
    env = dict(runx.env, UV_CACHE_DIR=str(tmp_path / "uvcache"))

    def one(argv):
        r = runx.run(*argv, env=env, cwd=str(tmp_path), stdin=subprocess.DEVNULL, timeout=60)
        return argv, r

    with ThreadPoolExecutor(4) as pool:
        for argv, r in pool.map(one, argvs):
            assert r.returncode in (0, 1, 2, 126, 127), (argv, r.returncode, r.stderr)
            assert "Traceback" not in r.stderr and "internal error" not in r.stderr, (argv, r.stderr)
            errors = [ln for ln in r.stderr.splitlines() if ln.startswith("runx: error:")]
            assert len(errors) <= 1 and (not errors or r.returncode != 0), (argv, r.stderr)
    runx.wait_clean()
