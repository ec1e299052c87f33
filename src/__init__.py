"""runx: run a command in a throwaway Python environment that cleans itself up.

The installed package is ``runx_env`` and this directory is it: the build
maps ``src/`` to ``runx_env`` (pyproject.toml, docs/design.md "Packaging"),
so ``src/runner/`` is ``runx_env.runner`` and ``src/reaper/`` is
``runx_env.reaper``. Inside the package every import is relative and names
a module file a reader finds from the importing one (nothing is imported
from a package's ``__init__``: tests/test_structure.py).

The layers, each importing only those below it:

    runner/    the command line, the environment a run sees, the exec
    reaper/    what outlives the exec: watch, leases, removal, sweep, the
               layer store and its upkeep, the FUSE tree
    errors.py, faults.py, version.py: what both share
"""
