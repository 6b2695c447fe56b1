"""The built-in default profile, as the commented ``bench.toml`` that ``bench init`` writes: one text, so
the profile a run without a ``bench.toml`` uses and the file a newcomer starts editing never differ."""

from __future__ import annotations

BENCH_TOML = """\
# compression-bench configuration (written by `bench init`; edit freely).
# `bench run` runs [profiles.default]; `bench run --profile NAME` runs another profile.
# `bench list` shows every task, compressor and bound with its parameters and their defaults.

[profiles.default]
description = "embedded default: scikit-learn digits, small MLP, every compressor and bound; seconds on 2 CPU cores"
tasks = ["digits-mlp"]     # task names (`bench list tasks`)
seeds = [0]                # each seed trains its own base model and compresses it again
compressors = "all"        # "all", or a list of names such as ["id", "prune"]
bounds = "all"             # "all", or a list such as ["occam", "catoni"]
delta = 0.05               # confidence of every certificate: each holds with probability >= 1 - delta
device = "auto"           # auto (CUDA when torch sees it), cpu or cuda
cell_timeout = 900         # seconds a compressor, decoder or bound may take before its cell fails
# results = "results"      # the results folder (one Parquet row per cell)
# claim_timeout = 60       # seconds after which a claim on a cell that was not renewed is taken over

# A compressor's or a bound's parameters; a list value is a grid (every point runs, and every
# certificate pays the configuration bits of choosing among them).
# [profiles.default.compressor.quantize]
# levels = [2, 4, 16]

# A second profile: `bench run --profile fashion-mnist` (needs `apt-get install dataset-fashion-mnist`
# or `--download`).
# [profiles.fashion-mnist]
# tasks = ["fashion-mnist-lenet5"]
# compressors = ["id", "prune"]
# bounds = ["occam", "catoni"]

# Run jobs on a dask cluster instead of this process:
# [profiles.default.executor]
# name = "dask"
# address = "tcp://scheduler:8786"   # empty: a local cluster of `workers` processes
"""
