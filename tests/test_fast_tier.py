"""The fast tier keeps its promise (conftest.py): a test marked fast that
starts a process fails, and one that uses a fixture which runs runx is
refused at collection. Run in process by pytester, with the suite's own
conftest."""

import os

import pytest

pytest_plugins = ["pytester"]

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def suite(pytester):
    """A pytester directory with this suite's conftest (its checkout check
    pointed at this checkout)."""
    with open(os.path.join(HERE, "conftest.py")) as f:
        pytester.makeconftest(f.read().replace("os.path.dirname(__file__)", repr(HERE)))
    pytester.makeini("[pytest]\nmarkers =\n    fast: the fast tier\n")
    return pytester


@pytest.mark.fast
def test_a_fast_test_that_starts_a_process_fails(suite):
    suite.makepyfile(test_spawn="""
        import os, subprocess
        import pytest

        @pytest.mark.fast
        def test_popen():
            subprocess.run(["true"])

        @pytest.mark.fast
        def test_fork():
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)

        @pytest.mark.fast
        def test_in_process():
            assert sum(range(4)) == 6
    """)
    result = suite.runpytest_inprocess("-m", "fast", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*a test marked fast started a process (subprocess.Popen*",
                                 "*a test marked fast started a process (os.fork*"])


@pytest.mark.fast
def test_a_fast_test_may_not_use_runx(suite):
    suite.makepyfile(test_e2e="""
        import pytest

        @pytest.mark.fast
        def test_uses_runx(runx):
            pass
    """)
    result = suite.runpytest_inprocess("-m", "fast", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_uses_runx is marked fast but uses *runx* (end to end)"])
