"""PEP 723 blocks read as uv reads them: the block's boundaries, CRLF, the error for a
block that does not close, the ``[tool.uv]`` table, requires-python as
PEP 440 says (checked against ``packaging``'s own test cases)."""

import os
import subprocess

import pytest

from conftest import RUNX, build_wheel, one_error_line
from runx_env.runner import pep440, pep723
from runx_env.errors import UsageError

SHOW = ("import sys, runxdemo; print(runxdemo.VERSION, "
        "'%d.%d' % sys.version_info[:2])")


def uv_bin() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


def both(runx, tmp_path, script, *, uv_args=(), runx_args=None, env=None):
    """(uv run's output, runx's output) for one script, both hermetic."""
    env = dict(env or runx.env)
    hermetic = ["--find-links", runx.wheelhouse, "--no-index"]
    u = subprocess.run([uv_bin(), "run", "--quiet", *hermetic, *uv_args, str(script)],
                       env=dict(env, UV_CACHE_DIR=str(tmp_path / "uvcache")),
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    r = subprocess.run([RUNX, *hermetic, *(uv_args if runx_args is None else runx_args),
                        str(script)], env=env, capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    return u, r


# --- CRLF -------------------------------------------------------------------

BLOCK = '# /// script\n# requires-python = ">=3.8"\n# dependencies = [\n#   "runxdemo",\n# ]\n# ///\n'


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_crlf_script_gets_its_dependencies_like_uv(runx, tmp_path, newline):
    # Old code: the reference regex's '$' stops before '\r\n' only in
    # multiline mode on '\n': a CRLF block matched nothing, no dependencies.
    s = tmp_path / "win.py"
    s.write_bytes((BLOCK + SHOW + "\n").replace("\n", newline).encode())
    u, r = both(runx, tmp_path, s)
    assert u.returncode == 0, u.stderr
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == u.stdout.split()[0] == "1.0"
    runx.wait_clean()


@pytest.mark.fast
@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_block_parses_in_process(newline):
    m = pep723.parse(BLOCK.replace("\n", newline) + "print()" + newline)
    assert m.found and m.dependencies == ["runxdemo"] and m.requires_python == ">=3.8"
    # A CRLF last line with no newline at the end of the file, too.
    m = pep723.parse('# /// script\r\n# dependencies = ["a"]\r\n# ///')
    assert m.dependencies == ["a"]


@pytest.mark.fast
@pytest.mark.parametrize("text, deps", [
    # The first '# /// script' decides, as in uv: inside a line, no block at all.
    ('x = "# /// script"\n# /// script\n# dependencies = ["a"]\n# ///\n', None),
    ('# /// scripts\n# dependencies = ["a"]\n# ///\n', None),
    ('# /// script \n# dependencies = ["a"]\n# ///\n', None),
    # The last '///' among the comment lines closes it.
    ('# /// script\n# dependencies = ["a"]\n# x = """\n# ///\n# """\n# ///\nprint()\n', ["a"]),
    # Comment lines after the closing '///' are not content.
    ('# /// script\n# dependencies = ["a"]\n# ///\n#\n#\n', ["a"]),
    # A bare '#' is an empty line of content.
    ('# /// script\n#\n# dependencies = ["a"]\n#\n# ///\n', ["a"]),
    # A lone '\r' is not a line end (Rust's str::lines), so this block does not close.
    ('# /// script\r# dependencies = ["a"]\r# ///\r', None),
])
def test_block_boundaries_as_uv(text, deps):
    m = pep723.parse(text)
    if deps is None:
        assert not m.found and m.dependencies == []
    else:
        assert m.found and m.dependencies == deps


@pytest.mark.fast
def test_the_last_closing_line_wins_as_in_uv():
    # uv takes everything up to the last '# ///' of the comment run: here a
    # '///' line inside the TOML, which is then malformed (uv refuses it too).
    with pytest.raises(UsageError) as e:
        pep723.parse('# /// script\n# dependencies = ["a"]\n# ///\n#\n# ///\nprint()\n', "x.py")
    assert "malformed" in e.value.message


@pytest.mark.parametrize("text, words", [
    ('# /// script\n# dependencies = ["runxdemo"]\n\n# ///\nprint("ran")\n',
     ["line 1", "line 3 ('')", "is not a comment"]),
    ('# /// script\n#dependencies = ["runxdemo"]\n# ///\nprint("ran")\n',
     ["line 2 ('#dependencies", "no space after '#'"]),
    ('# /// script\n# dependencies = ["runxdemo"]\n',
     ["before the end of the file"]),
])
def test_unclosed_block_stops_like_uv(runx, tmp_path, text, words):
    # Old code: a warning, and the script ran without its dependencies
    # (other code than uv runs: uv stops with exit 2).
    s = tmp_path / "open.py"
    s.write_text(text)
    u, r = both(runx, tmp_path, s)
    assert u.returncode == r.returncode == 2, (u.stderr, r.stderr)
    assert u.stdout == r.stdout == ""
    line = one_error_line(r.stderr, *words, "no closing '# ///'", "uv refuses", hint=True)
    assert "line 1" in line or "line 2" not in words[0]
    assert runx.trees() == []


@pytest.mark.fast
def test_pep723_no_block_and_other_blocks_are_ignored():
    assert not pep723.parse("print('hi')\n").found
    text = "# /// pyproject\n# [tool.x]\n# a = 1\n# ///\nprint()\n"
    assert not pep723.parse(text).found


@pytest.mark.fast
def test_pep723_unclosed_block_is_an_error():
    with pytest.raises(UsageError) as e:
        pep723.parse('#!/bin/env -S runx\n# /// script\n# dependencies = ["a"]\nprint()\n')
    assert "line 2" in e.value.message and "line 4 ('print()')" in e.value.message


@pytest.mark.fast
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


@pytest.mark.fast
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
    assert pep440.satisfies(version, spec) is ok


@pytest.mark.fast
def test_requires_python_not_met_by_an_explicit_choice_warns(capsys):
    # uv run --python 3.10 script.py (requires >=3.12) warns and runs it: so does runx.
    m = pep723.Metadata([], ">=3.99", True)
    assert pep723.check_python(m, "3.11.7", "tool.py") is False
    err = capsys.readouterr().err
    assert err.startswith("runx: warning:") and ">=3.99" in err and "3.11.7" in err
    assert pep723.check_python(m, "3.11.7", "tool.py", verbosity=-1) is False
    assert capsys.readouterr().err == ""


# --- requires-python: PEP 440, as packaging.specifiers says -------------------

import pep440_cases as cases  # noqa: E402  (packaging's own cases, see that file)

OPS = ["~=", "==", "!=", "<=", ">=", "<", ">"]


def valid(spec: str) -> bool:
    try:
        pep440.parse_specifier(spec)
        return True
    except UsageError:
        return False


@pytest.mark.fast
@pytest.mark.parametrize("spec", cases.VALID)
def test_packaging_valid_specifiers(spec):
    assert valid(spec)


@pytest.mark.fast
@pytest.mark.parametrize("spec", cases.INVALID)
def test_packaging_invalid_specifiers(spec):
    assert not valid(spec)


@pytest.mark.fast
@pytest.mark.parametrize("version", cases.NORMALIZED_VERSIONS)
def test_packaging_normalized_spellings(version):
    for op in (OPS if "+" not in version else ["==", "!="]):
        assert valid(op + version), op + version


@pytest.mark.fast
@pytest.mark.parametrize("version, spec, expected", cases.CONTAINS)
def test_packaging_contains(version, spec, expected):
    assert pep440.satisfies(version, spec) is expected


@pytest.mark.fast
@pytest.mark.parametrize("spec, version, expected", cases.INVALID_VERSION)
def test_packaging_contains_invalid_versions(spec, version, expected):
    assert pep440.satisfies(version, spec) is expected


@pytest.mark.fast
@pytest.mark.parametrize("version, spec, expected", cases.ARBITRARY + cases.SET_ARBITRARY)
def test_packaging_arbitrary_equality(version, spec, expected):
    assert pep440.satisfies(version, spec) is expected


# Specifiers a hand-written check got wrong: valid ones it refused, invalid ones
# it accepted.
ISSUE = [(">=3.8.dev0", True), (">=1!3.8", True), ("==3.11.0+local", True),
         (">=3.7.post1", True), ("<3.13.0a1.dev2", True), ("~=3.10.post1", True),
         ("==3.11rc1.*", False), ("==3.\u0661\u0661", False), (">=\uff13.8", False),
         (">=3.8+local", False), ("~=3", False), (">= 3.8 ,< 4", True), ("=== 3.11.7", True),
         ("", True), (",", True), (">=3.8,", True), ("=>3.8", False)]


@pytest.mark.fast
@pytest.mark.parametrize("spec, ok", ISSUE)
def test_specifiers_a_hand_written_check_got_wrong(spec, ok):
    assert valid(spec) is ok


@pytest.mark.fast
def test_every_specifier_agrees_with_packaging():
    """Differential: validity and contains() over every spec and version
    above, against packaging itself (the test extra installs it)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    specs = set(cases.VALID + cases.INVALID + [s for s, _ in ISSUE])
    specs |= {op + v for v in cases.NORMALIZED_VERSIONS for op in OPS}
    specs |= {s for _, s, _ in cases.CONTAINS} | {s for s, _, _ in cases.INVALID_VERSION}
    versions = {v for v, _, _ in cases.CONTAINS} | {"3.8.0", "3.10.13", "3.11.7", "3.12.1",
                                                     "3.13.0", "3.14.0", "2.7.18", "4.0"}
    checked = 0
    for spec in sorted(specs):
        try:
            theirs = SpecifierSet(spec, prereleases=True)
        except InvalidSpecifier:
            theirs = None
        assert valid(spec) is (theirs is not None), spec
        if theirs is None:
            continue
        for v in sorted(versions):
            assert pep440.satisfies(v, spec) is theirs.contains(v, prereleases=True), (v, spec)
            checked += 1
    assert checked > 50000, checked      # 57 000 with packaging's lists as copied


# --- [tool.uv] in the block: as uv run does it, or refused ---------------------

def wheels(d, *versions, name="uvtooldemo"):
    os.makedirs(d, exist_ok=True)
    for v in versions:
        build_wheel(str(d), name=name, version=v,
                    files={f"{name}/__init__.py": f'VERSION = "{v}"\n'}, scripts={})
    return d


TOOL_SHOW = "import uvtooldemo; print(uvtooldemo.VERSION)\n"


def tool_script(path, deps, tool):
    block = "\n".join(("# " + ln) if ln else "#" for ln in tool.strip("\n").split("\n"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# /// script\n# dependencies = {deps!r}\n".replace("'", '"')
                    + block + "\n# ///\n" + TOOL_SHOW)
    return path


def uv_vs_runx(runx, tmp_path, script, cwd, uv_cache="uvcache"):
    """Both tools on the script, from another directory than the script's."""
    env = dict(runx.env, UV_CACHE_DIR=str(tmp_path / uv_cache))
    u = subprocess.run([uv_bin(), "run", "--quiet", str(script)], env=env, cwd=cwd,
                       capture_output=True, text=True, timeout=120)
    r = subprocess.run([RUNX, str(script)], env=runx.env, cwd=cwd, capture_output=True,
                       text=True, timeout=120)
    assert u.returncode == 0, u.stderr
    assert r.returncode == 0, r.stderr
    return u.stdout.strip(), r.stdout.strip()


@pytest.mark.parametrize("deps, tool, expected", [
    (["uvtooldemo"], '[tool.uv]\nfind-links = ["../wh"]\nno-index = true\n'
     'constraint-dependencies = ["uvtooldemo<2"]', "1.0"),
    (["uvtooldemo>=2"], '[tool.uv]\nfind-links = ["../wh"]\nno-index = true\n'
     'override-dependencies = ["uvtooldemo==1.0"]', "1.0"),
    (["uvtooldemo"], '[tool.uv]\nno-index = true\n[tool.uv.sources]\n'
     'uvtooldemo = { path = "../local/uvtooldemo-3.0-py3-none-any.whl" }', "3.0"),
    (["uvtooldemo"], '[[tool.uv.index]]\nurl = "../wh"\nauthenticate = "always"', None),
    (["uvtooldemo"], '[tool.uv]\nfind-links = ["../wh"]\nno-index = true', "2.0"),
])
def test_tool_uv_as_uv_run(runx, tmp_path, deps, tool, expected):
    # Old code: [tool.uv] silently ignored (runx's fixture indexes hold no
    # uvtooldemo: the run failed, or got another version).
    wheels(tmp_path / "wh", "1.0", "2.0")
    wheels(tmp_path / "local", "3.0")
    s = tool_script(tmp_path / "tool" / "s.py", deps, tool)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    if expected is None:        # refused: one line, exit 2, nothing made
        r = subprocess.run([RUNX, str(s)], env=runx.env, cwd=cwd, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 2 and r.stdout == ""
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and "authenticate" in lines[0] and "no way to take it" in lines[0]
        assert runx.trees() == []
        return
    u, r = uv_vs_runx(runx, tmp_path, s, cwd)
    assert u == r == expected
    runx.wait_clean()


@pytest.mark.fast
def test_tool_uv_indexes_map_to_uv_pip_options(tmp_path):
    # Not differential: uv run would reach PyPI for what the flat index lacks.
    s = tmp_path / "d" / "s.py"
    for tool, want in [
        ('[[tool.uv.index]]\nurl = "wh"\nformat = "flat"', [f"--find-links {tmp_path}/d/wh"]),
        ('[[tool.uv.index]]\nurl = "https://a/simple"\ndefault = true\n[[tool.uv.index]]\n'
         'url = "https://b/simple"', ["--index-url https://a/simple",
                                      "--extra-index-url https://b/simple"]),
        ('[[tool.uv.index]]\nname = "x"\nurl = "https://x/simple"\nexplicit = true', []),
        ('[[tool.uv.index]]\nurl = "wh"\nformat = "flat"\n[tool.uv]\nno-index = true',
         ["--no-index"]),
    ]:
        tool_script(s, ["uvtooldemo"], tool)
        meta = pep723.read(str(s))
        t = pep723.tool_uv(meta, str(s), str(tmp_path / "cache"))
        got = [] if t.requirements_file is None else [
            ln for ln in open(t.requirements_file).read().splitlines() if not ln.startswith("#")]
        assert got == want, tool


def test_tool_uv_change_names_another_layer(runx, tmp_path):
    # Same dependencies text, another [tool.uv]: another layer, another version.
    wheels(tmp_path / "wh", "1.0", "2.0")
    s = tmp_path / "tool" / "s.py"
    for i, (bound, expected) in enumerate((("<2", "1.0"), ("<3", "2.0"), ("<2", "1.0"))):
        tool_script(s, ["uvtooldemo"], f'[tool.uv]\nfind-links = ["../wh"]\nno-index = true\n'
                    f'constraint-dependencies = ["uvtooldemo{bound}"]')
        # A fresh uv each time: uv keeps a script environment that still
        # satisfies the new constraint (1.0 under <3), runx resolves anew.
        u, r = uv_vs_runx(runx, tmp_path, s, tmp_path, uv_cache=f"uvcache{i}")
        assert u == r == expected
    runx.wait_clean()


def test_tool_uv_env_settings_reach_uv_not_the_payload(runx, tmp_path):
    wheels(tmp_path / "wh", "1.0", "2.0rc1")
    s = tmp_path / "s.py"
    s.write_text('# /// script\n# dependencies = ["uvtooldemo"]\n# [tool.uv]\n'
                 '# find-links = ["wh"]\n# no-index = true\n# prerelease = "allow"\n# ///\n'
                 'import os, uvtooldemo\nprint(uvtooldemo.VERSION, os.environ.get("UV_PRERELEASE"))\n')
    env = dict(runx.env, UV_CACHE_DIR=str(tmp_path / "uvcache"))
    u = subprocess.run([uv_bin(), "run", "--quiet", str(s)], env=env, capture_output=True,
                       text=True, timeout=120)
    r = subprocess.run([RUNX, str(s)], env=runx.env, capture_output=True, text=True,
                       timeout=120)
    assert u.returncode == 0 and r.returncode == 0, u.stderr + r.stderr
    assert u.stdout.split()[0] == r.stdout.split()[0] == "2.0rc1"
    assert r.stdout.split()[1] == "None", "the payload must not inherit runx's uv settings"
    runx.wait_clean()


@pytest.mark.parametrize("tool, words", [
    ('[tool.uv]\nextra-build-dependencies = {}', "only from a uv.toml"),
    ('[tool.uv]\nno-such-key = true', "uv takes no such key"),
    ('[tool.uv.sources]\nuvtooldemo = { index = "mine" }', "'index'"),
    ('[tool.uv.sources]\nuvtooldemo = [{ path = "a" }, { path = "b" }]', "one source table"),
    ('[tool.uv]\nconstraint-dependencies = 1', "list of strings"),
])
def test_tool_uv_refusals_are_one_line(runx, tmp_path, tool, words):
    s = tool_script(tmp_path / "s.py", ["uvtooldemo"], tool)
    r = subprocess.run([RUNX, str(s)], env=runx.env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("runx: error: ") and words in lines[0], r.stderr
    assert runx.trees() == []


@pytest.mark.fast
def test_tool_uv_sources_become_direct_references(tmp_path):
    s = tmp_path / "d" / "s.py"
    s.parent.mkdir()
    s.write_text("""\
# /// script
# dependencies = ["uvtooldemo[x] >=1 ; python_version >= '3'", "other", "gitdep", "urldep",
#                 "Edit_Me"]
# [tool.uv.sources]
# uvtooldemo = { path = "../pkgs/demo" }
# gitdep = { git = "https://example.org/g.git", tag = "v1", subdirectory = "sub" }
# urldep = { url = "https://example.org/u-1.0.tar.gz" }
# edit-me = { path = "e", editable = true }
# notadep = { path = "x" }
# ///
""")
    meta = pep723.read(str(s))
    t = pep723.tool_uv(meta, str(s), str(tmp_path / "cache"))
    assert t.dependencies == ["other"]
    got = [ln for ln in open(t.requirements_file).read().splitlines() if not ln.startswith("#")]
    assert got == [
        f"uvtooldemo[x] @ file://{tmp_path}/pkgs/demo ; python_version >= '3'",
        "gitdep @ git+https://example.org/g.git@v1#subdirectory=sub",
        "urldep @ https://example.org/u-1.0.tar.gz",
        f"-e {tmp_path}/d/e",
    ]


# --- the parsed block, cached (pep723._load_meta) ------------------------------

CACHED_BLOCK = ('# /// script\n# requires-python = ">=3.8"\n# dependencies = ["runxdemo"]\n'
         '# [tool.uv]\n# exclude-newer = "2099-01-01T00:00:00Z"\n# ///\n')


@pytest.mark.fast
def test_a_block_read_before_is_not_parsed_again(tmp_path, monkeypatch):
    """Its checked content is kept under the cache, named by the block's
    text: the next read gives the same metadata without TOML, and the
    requires-python answer for an interpreter version is kept with it."""
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    first = pep723.parse(CACHED_BLOCK, "s.py", cache=str(cache))
    assert first.entry is not None and os.path.exists(first.entry)
    assert pep723.check_python(first, "3.11.7", "s.py")
    import tomllib

    monkeypatch.setattr(tomllib, "loads", lambda *a: pytest.fail("parsed again"))
    monkeypatch.setattr(pep723, "satisfies", lambda *a: pytest.fail("checked again"))
    again = pep723.parse(CACHED_BLOCK, "s.py", cache=str(cache))
    assert (again.dependencies, again.requires_python, again.tool_uv) == \
        (first.dependencies, first.requires_python, first.tool_uv) == \
        (["runxdemo"], ">=3.8", {"exclude-newer": "2099-01-01T00:00:00Z"})
    assert pep723.check_python(again, "3.11.7", "s.py")
    # Another text, another entry: parsed.
    monkeypatch.undo()
    other = pep723.parse(CACHED_BLOCK.replace(">=3.8", ">=3.99"), "s.py", cache=str(cache))
    assert other.entry != first.entry
    assert not pep723.check_python(other, "3.11.7", "s.py", verbosity=-1)
    assert pep723.parse(CACHED_BLOCK.replace(">=3.8", ">=3.99"), "s.py",
                        cache=str(cache)).satisfied == {"3.11.7": False}


@pytest.mark.fast
def test_a_cached_block_is_believed_only_from_a_private_file(tmp_path):
    """An entry another user could have written (group- or world-writable)
    is refused like every cached answer; one with a TOML date (marshal
    cannot keep it) is not cached, and still parses."""
    from runx_env.errors import RunxError

    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    first = pep723.parse(CACHED_BLOCK, "s.py", cache=str(cache))
    os.chmod(first.entry, 0o666)
    with pytest.raises(RunxError):
        pep723.parse(CACHED_BLOCK, "s.py", cache=str(cache))
    dated = CACHED_BLOCK.replace('"2099-01-01T00:00:00Z"', "2099-01-01T00:00:00Z")
    meta = pep723.parse(dated, "s.py", cache=str(cache))
    assert meta.tool_uv["exclude-newer"].year == 2099
    assert not os.path.exists(meta.entry)


def test_a_block_edited_between_runs_is_read_again_as_uv_reads_it(runx, tmp_path):
    """The cached parse is the block's, not the script's: a script run, its
    block edited (another pin, the same length and mtime second), run again,
    gets what uv run gets each time; the first block run a third time too
    (its cached parse)."""
    wheels(tmp_path / "wh", "1.0", "2.0")
    s = tool_script(tmp_path / "tool" / "s.py", ["uvtooldemo==1.0"],
                    '[tool.uv]\nfind-links = ["../wh"]\nno-index = true')
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    first = s.read_text()
    for text, expected in ((first, "1.0"), (first.replace("==1.0", "==2.0"), "2.0"),
                           (first, "1.0")):
        s.write_text(text)
        u, r = uv_vs_runx(runx, tmp_path, s, cwd)
        assert u == r == expected
    runx.wait_clean()
