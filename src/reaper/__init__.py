"""runx's reaper: watch → leases → removal → sweep.

The reaper is forked by the runner before the exec (see runx_env.runner.launch) and
lives detached until the tree it owns is gone. The runner imports its
``watch``, ``ownership`` and ``handoff`` modules before the fork; the rest
is imported by the reaper itself.
"""
