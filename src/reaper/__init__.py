"""runx's reaper: watch → leases → removal → sweep.

The reaper is forked by the runner before the exec (see runner.launch) and
lives detached until the tree it owns is gone. The runner imports
``reaper.watch``, ``reaper.ownership`` and ``reaper.daemon`` before the fork.
"""
