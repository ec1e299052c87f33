"""--help, the README and shell completion document every option and exit
code, from the one option table (runx_env.runner.options)."""

import os
import pty
import re
import shutil
import subprocess

import pytest

from conftest import RUNX, path_env
from runx_env.runner import completion, options
from runx_env.runner.helptext import help_text


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- help, README and completion --------------------------------------------

def all_options() -> set:
    return {n for names, _, _ in completion.OPTIONS for n in names}


@pytest.mark.fast
def test_completion_table_matches_the_parser():
    # Both come from runx_env.runner.options now; tests/test_options.py checks the
    # parser takes every option of the table with or without a value as it says.
    assert all_options() == {n for opt in options.OPTIONS for n in opt.names}
    for names, kind, _ in completion.OPTIONS:
        assert all((options.by_name()[n].metavar is not None) == (kind is not None) for n in names)


@pytest.mark.fast
def test_help_and_readme_document_every_option_and_exit_code():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    options = readme.split("## Options", 1)[1].split("### Where things live", 1)[0]
    HELP = help_text()
    for opt in all_options():
        assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", HELP), f"--help lacks {opt}"
        assert f"`{opt}" in options or f"{opt}`" in options, f"README Options lacks {opt}"
    for code in ("1", "2", "126", "127"):
        assert re.search(rf"^\| {code} \|", options, re.M), f"README exit status lacks {code}"
        assert re.search(rf"^  {code} ", HELP, re.M), f"--help exit status lacks {code}"


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


# --- small things (issue 22.8) -------------------------------------------------------

def test_help_leads_with_usage_and_options_as_uv_does():
    """uv's --help: one line of what it is, the usage, then the options.
    runx's prose (examples, tool mode, exit status) comes after them."""
    lines = help_text().splitlines()
    assert lines[1] == "" and lines[2].startswith("usage: runx "), lines[:4]
    first_option = next(i for i, ln in enumerate(lines) if ln.endswith(" options:"))
    assert first_option < 10, lines[:first_option + 1]
    assert help_text().index("runx --with cowsay") > help_text().index("-h, --help")


def test_every_option_has_its_own_help_text():
    """--native-tls and --system-certs shared one; none may."""
    seen: dict = {}
    for opt in options.OPTIONS:
        assert opt.help not in seen, (opt.names, seen.get(opt.help))
        seen[opt.help] = opt.names


def test_version_names_the_uv_runx_drives(tmp_path):
    """`runx --version` says which uv it drives, found as a run finds it
    (RUNX_UV first), and stays cheap: no re, no subprocess module."""
    fake = tmp_path / "uv"
    fake.write_text("#!/bin/sh\necho 'uv 9.8.7 (fake)'\n")
    fake.chmod(0o755)
    r = subprocess.run([RUNX, "--version"], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, RUNX_UV=str(fake)))
    from runx_env.version import __version__

    assert r.returncode == 0 and r.stdout == f"runx {__version__} (uv 9.8.7, {fake})\n", r
    r = subprocess.run([RUNX, "--version"], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, RUNX_UV=str(tmp_path / "none")))
    assert r.returncode == 0 and "uv not found at RUNX_UV=" in r.stdout, r
    r = subprocess.run([RUNX, "--version"],
                       capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, PYTHONPROFILEIMPORTTIME="1"))
    loaded = {ln.rsplit("|", 1)[1].strip() for ln in r.stderr.splitlines() if "|" in ln}
    assert "runx_env.runner.cli" in loaded and not {"re", "subprocess"} & loaded, loaded


def test_pyenv_shim_error_says_what_is_wrong(tmp_path):
    """--python naming a pyenv shim whose version is not selected: was uv's
    "Failed to inspect Python interpreter" with a hint in nested
    parentheses; now one line that says it is a pyenv shim, which version
    has the command, and how to select it."""
    shims = tmp_path / "pyenv" / "shims"
    shims.mkdir(parents=True)
    shim = shims / "python3.99"
    shim.write_text("#!/bin/sh\ncat >&2 <<'E'\npyenv: python3.99: command not found\n\n"
                    "The `python3.99' command exists in these Python versions:\n  3.99.1\n\n"
                    "Note: See 'pyenv help global' for tips on allowing multiple\n"
                    "      Python versions to be found at the same time.\nE\nexit 127\n")
    shim.chmod(0o755)
    env = dict(os.environ, RUNX_CACHE_DIR=str(tmp_path / "cache"), UV_PYTHON_DOWNLOADS="never")
    r = subprocess.run([RUNX, "--python", str(shim), "python", "-c", "pass"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"runx: error: --python {shim}: {shim} is a pyenv shim"), line
    assert "3.99.1" in line and "pyenv shell" in line, line
    hint = line[line.index(" (") + 2:-1]
    assert "(" not in hint and ")" not in hint, hint
    r = subprocess.run([RUNX, "--python", "3.98", "python", "-c", "pass"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "(install it with 'uv python install 3.98', or give a path)" \
        in r.stderr, r.stderr
