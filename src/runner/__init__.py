"""runx's runner: what to install, the cached layer, the ephemeral tree, the exec.

Everything here runs before the exec; what a warm start may import is
tests/test_warm_path.py's allowlist.
"""
