"""runx's one import namespace, unique to its distribution (runx-env).

``runx_env.runner`` and ``runx_env.reaper`` are links to ``src/runner/`` and
``src/reaper/``, where the code lives (see docs/design.md, "Packaging").
"""
