"""What runx tells the user: failures (one line on stderr, a hint, a
documented exit code) and every other message, through ``say``."""

import sys

# Exit codes runx itself uses before the exec. After the exec every status is
# the payload's own, including deaths by signal.
EXIT_ENV = 1          # the environment could not be built (uv failed, disk full, FUSE missing)
EXIT_USAGE = 2        # what was typed is wrong: option, missing command/file, bad metadata
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127


class RunxError(Exception):
    """An error the user can act on: printed as ``runx: error: MESSAGE`` plus a hint."""

    def __init__(self, message: str, hint: str | None = None, code: int = EXIT_ENV):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code


class UsageError(RunxError):
    def __init__(self, message: str, hint: str | None = "see 'runx --help'"):
        super().__init__(message, hint, EXIT_USAGE)


class Interrupted(BaseException):
    """A signal ended runx before the exec (runx_env.runner.interrupt): what it
    interrupted was undone on the way out; ``main`` says so in one line and
    dies of the same signal. A BaseException, like KeyboardInterrupt: no
    ``except Exception`` may swallow it."""

    doing = "before the command started"    # what a signal now would interrupt
    caught: int | None = None               # the first signal, once raised
    dropped = False                         # a finaliser dropped it: raise it again

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def say(text: str) -> None:
    """Write a runx message to stderr: errors, warnings, the -v log, the
    cold-build summary, --keep's path, uv's explanation of a failure. The
    only writer, so that none of them can make a run fail: the caller may
    have closed fd 2 (``2>&-``: sys.stderr is None) or handed a dead pipe."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        pass
