"""``--env-file``: dotenv files as uv reads them, for the payload only, never
for runx or uv; a malformed line is a usage error that names it."""

import json

import pytest

from runx_env.runner import dotenv
from runx_env.errors import UsageError


# --- dotenv (in process) ----------------------------------------------------

@pytest.mark.fast
def test_dotenv_format():
    text = ("# comment\n\nexport A=one\nB = 'single ${A} # kept'\n"
            'C="double\\n${A} \\${A}"  # comment\nD=plain value # comment\nE=a#b\n'
            "F=\nG\nH=${MISSING:-fallback}/${HOME_X}\nI='multi\nline'\nJ=${A}${A}\n")
    got = dotenv.parse(text, {"HOME_X": "/h"})
    assert got == {"A": "one", "B": "single ${A} # kept", "C": "double\none ${A}",
                   "D": "plain value", "E": "a#b", "F": "", "H": "fallback//h",
                   "I": "multi\nline", "J": "oneone"}


@pytest.mark.fast
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
