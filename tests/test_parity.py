"""runx beside uv 0.13.9 on the inputs of issue 21: each cause a differential
test that runs uv (``uv run``, ``uvx``) and runx on the same input. The
script lock is tests/test_script_lock.py's; the option fuzz test_options'.

Hermetic: wheels built here, found with --find-links/--no-index (or the
script block's own find-links), a private uv cache per test.
"""

import os
import subprocess
import sys

import pytest

from conftest import RUNX, build_wheel, one_error_line
from runx_env.runner import pep723

BIN = os.path.dirname(sys.executable)
UV, UVX = os.path.join(BIN, "uv"), os.path.join(BIN, "uvx")
SHOW = "import pardemo; print(pardemo.VERSION)"


def wheel(d, name, version, *, scripts=None, requires=()):
    os.makedirs(d, exist_ok=True)
    body = (f'VERSION = "{version}"\n'
            'def main():\n    import sys; print(sys.argv[0].rsplit("/", 1)[-1], VERSION)\n')
    return build_wheel(str(d), name, version, files={f"{name}/__init__.py": body},
                       scripts=scripts or {}, requires=requires)


class Pair:
    """uv and runx with the same environment, uv with a cache of its own."""

    def __init__(self, runx, tmp_path):
        self.runx = runx
        self.wh = tmp_path / "wh"
        wheel(self.wh, "pardemo", "1.0")
        wheel(self.wh, "pardemo", "2.0", scripts={"pardemo": "pardemo:main"})
        wheel(self.wh, "wrapper", "1.0", requires=["pardemo"])
        self.env = dict(runx.env, UV_CACHE_DIR=str(tmp_path / "uvcache"))
        self.cwd = tmp_path

    def hermetic(self):
        return ["--find-links", str(self.wh), "--no-index"]

    def uv(self, *args, env=None):
        return subprocess.run([UV, *args], env={**self.env, **(env or {})}, cwd=self.cwd,
                              capture_output=True, text=True, timeout=120)

    def uvx(self, *args, env=None):
        return subprocess.run([UVX, *self.hermetic(), *args], env={**self.env, **(env or {})},
                              cwd=self.cwd, capture_output=True, text=True, timeout=120)

    def rx(self, *args, env=None, hermetic=True):
        return subprocess.run([RUNX, *(self.hermetic() if hermetic else []), *args],
                              env={**self.runx.env, **(env or {})}, cwd=self.cwd,
                              capture_output=True, text=True, timeout=120)


@pytest.fixture
def pair(runx, tmp_path):
    yield Pair(runx, tmp_path)
    runx.wait_clean()


# --- 2. every [tool.uv] key uv takes -------------------------------------------

# One value of every key uv 0.13.9's script ToolUv takes (crates/uv-scripts:
# GlobalOptions, ResolverInstallerSchema and the dependency tables), and keys
# of a project's [tool.uv] that a script block may not have.
TAKEN = {
    "required-version": '">=0.1"', "system-certs": "false", "native-tls": "false",
    "offline": "false", "no-cache": "false", "cache-dir": '"uvc"', "preview": "false",
    "preview-features": "[]", "python-preference": '"managed"', "python-downloads": '"never"',
    "concurrent-downloads": "4", "concurrent-builds": "2", "concurrent-installs": "2",
    "http-proxy": '"http://localhost:9"', "https-proxy": '"http://localhost:9"',
    "no-proxy": '["localhost"]', "allow-insecure-host": '["localhost"]',
    "index-url": '"https://pypi.org/simple"', "extra-index-url": "[]", "no-index": "true",
    "find-links": "[]", "index-strategy": '"first-index"', "keyring-provider": '"disabled"',
    "resolution": '"highest"', "prerelease": '"allow"', "prerelease-package": "{}",
    "fork-strategy": '"fewest"', "dependency-metadata": "[]", "config-settings": '{ a = "b" }',
    "config-settings-package": '{ x = { a = "b" } }', "no-build-isolation": "false",
    "no-build-isolation-package": "[]", "extra-build-dependencies": "{}",
    "extra-build-variables": "{}", "exclude-newer": '"2024-01-01T00:00:00Z"',
    "exclude-newer-package": "{}", "link-mode": '"copy"', "compile-bytecode": "false",
    "no-sources": "false", "no-sources-package": "[]", "upgrade": "false",
    "upgrade-package": "[]", "reinstall": "false", "reinstall-package": "[]", "no-build": "true",
    "no-build-package": "[]", "no-binary": "false", "no-binary-package": "[]",
    "torch-backend": '"cpu"', "override-dependencies": "[]", "exclude-dependencies": "[]",
    "constraint-dependencies": "[]", "build-constraint-dependencies": "[]", "sources": "{}",
    "index": "[]",
}
NOT_TAKEN = {"managed": "true", "dev-dependencies": "[]", "package": "true",
             "environments": "[]", "cache-keys": "[]", "conflicts": "[]", "pip": "{}",
             "workspace": "{}", "default-groups": "[]", "python-install-mirror": '"https://x"',
             "build-backend": "{}", "bogus-key": "1"}


def block(key, value):
    return (f"# /// script\n# dependencies = []\n# [tool.uv]\n# {key} = {value}\n# ///\n"
            "print('ok')\n")


def test_runx_knows_exactly_the_keys_uv_takes(pair, tmp_path):
    """uv takes every key of TAKEN and refuses every key of NOT_TAKEN, and
    pep723._KEYS is TAKEN: nothing refused that uv takes, nothing taken
    that uv refuses."""
    assert set(pep723._KEYS) == set(TAKEN)
    s = tmp_path / "k.py"
    for key, value in {**TAKEN, **NOT_TAKEN}.items():
        s.write_text(block(key, value))
        u = pair.uv("run", "--quiet", "--offline", str(s))
        assert (u.returncode == 0) == (key in TAKEN), (key, u.stderr)
        if key in NOT_TAKEN:
            r = pair.rx(str(s))
            assert r.returncode == 2, (key, r.stderr)
            one_error_line(r.stderr, key, "uv takes no such key")


@pytest.mark.fast
def test_every_key_uv_takes_is_mapped_or_refused_with_a_reason(tmp_path):
    """In-process: each key of TAKEN maps without error, but the three uv pip
    install cannot take, which are refused with why (README lists them)."""
    s = tmp_path / "k.py"
    for key, value in TAKEN.items():
        s.write_text(block(key, value))
        meta = pep723.read(str(s))
        if pep723._KEYS[key][0] == "refuse":
            with pytest.raises(Exception, match="only from a uv.toml"):
                pep723.tool_uv(meta, str(s), str(tmp_path / "cache"))
        else:
            pep723.tool_uv(meta, str(s), str(tmp_path / "cache"))


def test_no_build_and_compile_bytecode_as_uv_run(pair, tmp_path):
    # Old code: exit 2 ("not supported by runx") on every script of uv's own
    # repository (they set no-build = true).
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "pyproject.toml").write_text(
        '[project]\nname = "srconly"\nversion = "1.0"\n')
    s = tmp_path / "s.py"
    for deps, sources, ok in (('["pardemo"]', "", True),
                              ('["srconly"]', '# [tool.uv.sources]\n# srconly = { path = "proj" }\n',
                               False)):
        s.write_text(f"# /// script\n# dependencies = {deps}\n# [tool.uv]\n"
                     f'# find-links = ["wh"]\n# no-index = true\n# no-build = true\n'
                     f"# compile-bytecode = true\n{sources}# ///\nprint('ran')\n")
        u = pair.uv("run", "--quiet", str(s))
        r = pair.rx(str(s), hermetic=False)
        assert (u.returncode == 0) is (r.returncode == 0) is ok, (u.stderr, r.stderr)
        assert u.stdout == r.stdout
    assert "srconly" in r.stderr and r.returncode == 1


def test_keyed_settings_change_what_is_installed_as_in_uv(pair, tmp_path):
    """A key that changes what uv installs (here exclude-newer-package and
    no-binary-package, mapped to uv pip's options and variables) does it in
    runx too."""
    s = tmp_path / "s.py"
    for extra, want in (("", "2.0"), ('# exclude-newer-package = { pardemo = "2000-01-01T00:00:00Z" }\n',
                                      None)):
        s.write_text('# /// script\n# dependencies = ["pardemo"]\n# [tool.uv]\n'
                     f'# find-links = ["wh"]\n# no-index = true\n{extra}# ///\n{SHOW}\n')
        u = pair.uv("run", "--quiet", str(s))
        r = pair.rx(str(s), hermetic=False)
        # Local wheels have no upload date: uv keeps them whatever exclude-newer
        # says, so both run 2.0; what matters is that runx takes the key as uv.
        assert u.returncode == r.returncode == 0, (u.stderr, r.stderr)
        assert u.stdout == r.stdout == "2.0\n" or want is None and u.stdout == r.stdout


# --- 3. python@VER in tool mode ----------------------------------------------

V = "%d.%d" % sys.version_info[:2]


@pytest.mark.parametrize("argv", [
    [f"python@{V}", "-c", "import sys; print(sys.version_info[:2])"],
    [f"python{V}", "-c", "import sys; print(sys.version_info[:2])"],
    [f"cpython@{V}", "-c", "import sys; print(sys.version_info[:2])"],
    ["--from", f"python@{V}", "python", "-c", "print('from')"],
    ["--from", f"python>={V}", "sh", "-c", "echo $0"],
    ["--with", "pardemo", "--from", f"python@{V}", "python", "-c", SHOW],
    ["python@latest", "--version"],
])
def test_python_at_version_as_uvx(pair, argv):
    # Old code: read as a package named python (exit 1 after a failed resolution).
    u = pair.uvx(*argv)
    r = pair.rx(*argv)
    assert u.returncode == r.returncode, (u.stderr, r.stderr)
    assert u.stdout == r.stdout, (u.stderr, r.stderr)
    if u.returncode:
        assert r.returncode == 2
        one_error_line(r.stderr, "latest")


# --- 4. --with PLUGIN TOOL -----------------------------------------------------

def test_with_plugin_tool_says_the_tool_is_another_installations(pair, tmp_path):
    other = tmp_path / "other" / "bin"
    other.mkdir(parents=True)
    (other / "pardemo").write_text(f"#!{sys.executable}\nprint('other installation')\n")
    (other / "pardemo").chmod(0o755)
    env = {"PATH": f"{other}:{pair.env['PATH']}"}
    u = pair.uv("run", "--no-project", *pair.hermetic(), "--with", "wrapper==1.0",
                "--with", "pardemo==1.0", "pardemo", env=env)
    r = pair.rx("--with", "wrapper==1.0", "--with", "pardemo==1.0", "pardemo", env=env)
    assert u.returncode == r.returncode == 0
    assert u.stdout == r.stdout == "other installation\n"       # uv run's meaning, kept
    lines = [ln for ln in r.stderr.splitlines() if not ln.startswith("runx: installed")]
    assert len(lines) == 1 and lines[0].startswith("runx: warning: pardemo is not in the "), r.stderr
    assert "runx --from pardemo --with wrapper==1.0 --with pardemo==1.0 pardemo" in lines[0]
    r = pair.rx("-q", "--with", "pardemo==1.0", "pardemo", env=env)
    assert r.stderr == "" and r.stdout == "other installation\n"
    # Not on PATH at all: the 127 error names the uvx spelling.
    r = pair.rx("--with", "pardemo==1.0", "pardemo")
    assert r.returncode == 127
    one_error_line(r.stderr, "runx --from pardemo --with pardemo==1.0 pardemo")
    # The environment's own command: no warning.
    r = pair.rx("--with", "pardemo==2.0", "pardemo")
    assert r.returncode == 0 and r.stdout == "pardemo 2.0\n" and "warning" not in r.stderr


# --- 5. variables per mode -----------------------------------------------------

@pytest.mark.parametrize("var, content", [("UV_CONSTRAINT", "pardemo<2\n"),
                                          ("UV_OVERRIDE", "pardemo==1.0\n")])
def test_uv_pip_only_variables_per_mode(pair, tmp_path, var, content):
    # Old code: applied to --with (1.0), where uv run ignores them (2.0).
    f = tmp_path / "c.txt"
    f.write_text(content)
    env = {var: str(f)}
    u = pair.uv("run", "--no-project", *pair.hermetic(), "--with", "pardemo", "python", "-c",
                SHOW, env=env)
    r = pair.rx("--with", "pardemo", "python", "-c", SHOW, env=env)
    assert u.stdout == r.stdout == "2.0\n", (u.stderr, r.stderr)
    u = pair.uvx("--from", "pardemo", "python", "-c", SHOW, env=env)
    r = pair.rx("--from", "pardemo", "python", "-c", SHOW, env=env)
    assert u.stdout == r.stdout == "1.0\n", (u.stderr, r.stderr)


def test_uv_env_file_as_uv_run_and_uvx(pair, tmp_path):
    (tmp_path / "a.env").write_text("A=1\n")
    (tmp_path / "b.env").write_text("B=2\n")
    show = "import os; print(os.environ.get('A'), os.environ.get('B'))"
    for env, extra in (({"UV_ENV_FILE": "a.env"}, []),
                       ({"UV_ENV_FILE": "a.env"}, ["--env-file", "b.env"]),
                       ({"UV_ENV_FILE": "a.env", "UV_NO_ENV_FILE": "1"}, []),
                       ({"UV_ENV_FILE": "a.env"}, ["--no-env-file"])):
        u = pair.uv("run", "--no-project", *extra, "python", "-c", show, env=env)
        r = pair.rx(*extra, "python", "-c", show, env=env)
        assert u.returncode == r.returncode == 0, (u.stderr, r.stderr)
        assert u.stdout == r.stdout, (env, extra)
    env = {"UV_ENV_FILE": "a.env b.env"}          # uvx: several, space-separated
    u = pair.uvx("--from", "pardemo", "python", "-c", show, env=env)
    r = pair.rx("--from", "pardemo", "python", "-c", show, env=env)
    assert u.stdout == r.stdout == "1 2\n", (u.stderr, r.stderr)
    # ... and never a rebuild: the variable is the payload's.
    r = pair.rx("-v", "--from", "pardemo", "python", "-c", show, env={"UV_ENV_FILE": "a.env"})
    assert "layer hit" in r.stderr, r.stderr


# --- 6, 7, 8: --script, NAME @ URL, a package without the command --------------

def test_script_option_runs_any_file_as_a_script(pair, tmp_path):
    # Old code: refused ("a *.py file is a script already").
    t = tmp_path / "tool.txt"
    t.write_text('# /// script\n# dependencies = ["pardemo==1.0"]\n# ///\n'
                 "import sys; " + SHOW + "; print(sys.argv[1:])\n")
    for flag in ("--script", "-s", "--gui-script"):
        u = pair.uv("run", "--quiet", *pair.hermetic(), flag, str(t), "a", "-b")
        r = pair.rx(flag, str(t), "a", "-b")
        assert u.returncode == r.returncode == 0, (u.stderr, r.stderr)
        assert u.stdout == r.stdout == "1.0\n['a', '-b']\n"
    u = pair.uv("run", "--quiet", "--script", str(tmp_path / "nope.txt"))
    r = pair.rx("--script", str(tmp_path / "nope.txt"))
    assert u.returncode == r.returncode == 2
    one_error_line(r.stderr, "nope.txt", "no such file")


def test_name_at_url_in_tool_mode(pair):
    # Old code: taken for a path ("no such file").
    url = "file://" + str(pair.wh / "pardemo-2.0-py3-none-any.whl")
    for spec in (f"pardemo @ {url}", f"pardemo@{url}"):
        u = pair.uvx(spec)
        r = pair.rx(spec)
        assert u.returncode == r.returncode == 0, (u.stderr, r.stderr)
        assert u.stdout == r.stdout == "pardemo 2.0\n"


def test_a_package_without_the_command_exits_as_uvx(pair):
    # Old code: 127, and the list named a dependency's commands as the package's.
    for argv in (["wrapper==1.0"], ["--from", "pardemo==2.0", "nosuch"]):
        u = pair.uvx(*argv)
        r = pair.rx(*argv)
        assert u.returncode == r.returncode == 1, (u.stderr, r.stderr)
    line = one_error_line(pair.rx("wrapper==1.0").stderr, alone=False)
    assert "wrapper provides no command" in line and "it has no commands" in line
    assert "its dependencies': pardemo" in line
    line = one_error_line(pair.rx("--from", "pardemo==2.0", "nosuch").stderr, alone=False)
    assert "its commands: pardemo" in line and "dependencies" not in line


# --- small things --------------------------------------------------------------

def test_uv_is_quoted_in_whole_sentences(pair):
    # Old code: uv wrapped its error at COLUMNS and runx quoted the first
    # piece ("... managed installations, or; no download either").
    env = {"COLUMNS": "40", "UV_PYTHON_DOWNLOADS": "never"}
    u = pair.uv("python", "find", "--no-project", "3.99", env={**env, "UV_NO_WRAP": "1"})
    sentence = u.stderr.strip().removeprefix("error: ")
    assert sentence.endswith("search path"), u.stderr
    r = pair.rx("--python", "3.99", "python", "-V", env=env)
    assert r.returncode == 1
    assert sentence in one_error_line(r.stderr)


def test_qq_is_taken_as_uv_takes_it(pair):
    u = pair.uv("run", "-qq", "--no-project", *pair.hermetic(), "--with", "pardemo", "python",
                "-c", SHOW)
    r = pair.rx("-qq", "--with", "pardemo", "python", "-c", SHOW)
    assert u.returncode == r.returncode == 0 and u.stdout == r.stdout == "2.0\n"
    assert r.stderr == ""
