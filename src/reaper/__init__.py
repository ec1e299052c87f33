"""runx's reaper: watch → leases → removal → sweep.

The reaper is forked by the runner before the exec (see runner.launch) and
lives detached until the tree it owns is gone. Keep this package's import
light: the runner imports ``reaper.watch`` on the warm path.
"""
