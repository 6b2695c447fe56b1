"""Built-in plugins, installed as the package ``bench_plugins``.

They are registered through the ``compression_bench`` entry-point group in ``pyproject.toml``, exactly as a
third-party plugin would be; the harness has no special knowledge of them.
"""
