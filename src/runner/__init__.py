"""runx's runner: what to install, the cached layer, the ephemeral tree, the exec.

Everything here runs before the exec, on the path a warm start takes: keep
imports light (no trio, psutil, pyfuse3, subprocess on a warm start).
"""

__version__ = "0.1.0"
