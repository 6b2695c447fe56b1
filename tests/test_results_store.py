"""The results folder's storage: compact artifact layers, packed rows, and the shipped board's size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.api.contracts import LayerCode
from bench.results import PACKED, ResultsStore, smallest_int

REFERENCE = Path(__file__).resolve().parent.parent / "reference"


def layer(name: str, size: int, positions, levels: int, seed: int) -> LayerCode:
    rng = np.random.default_rng(seed)
    positions = np.asarray(positions, dtype=np.int64)
    return LayerCode(name=name, size=size, positions=positions,
                     codebook=rng.normal(size=levels).astype(np.float32),
                     assignments=rng.integers(0, levels, positions.size).astype(np.int64),
                     positions_bits=12.5, codebook_bits=16.0 * levels)


@pytest.mark.parametrize("values, dtype", [([0, 255], np.uint8), ([-1, 127], np.int8), ([0, 256], np.uint16),
                                           ([-129, 5], np.int16), ([0, 70_000], np.uint32),
                                           ([-1, 70_000], np.int32), ([0, 2**40], np.int64), ([], np.uint8)])
def test_smallest_int_holds_every_value_exactly(values, dtype):
    out = smallest_int(np.asarray(values, dtype=np.int64))
    assert out.dtype == dtype and np.array_equal(out.astype(np.int64), values)


def test_layers_round_trip_in_the_compact_format(tmp_path):
    store = ResultsStore(tmp_path)
    rng = np.random.default_rng(0)
    layers = [layer("dense.weight", 400_000, np.arange(400_000), 16, 1),
              layer("sparse.weight", 25_000, np.sort(rng.choice(25_000, 700, replace=False)), 300, 2),
              layer("empty.weight", 10, [], 1, 3),
              layer("unsorted.weight", 1_000, [999, 3, 500, 0], 4, 4)]  # steps may be negative
    store.save_artifact("a", b"message", {"bits": 56}, layers)
    _, meta, back = store.load_artifact("a")
    assert [l["name"] for l in meta["layers"]] == [l.name for l in layers]
    for want, got in zip(layers, back):
        assert got.positions.dtype == np.int64 and got.assignments.dtype == np.int64
        assert np.array_equal(got.positions, want.positions) and np.array_equal(got.assignments, want.assignments)
        assert np.array_equal(got.codebook, want.codebook)
        assert (got.name, got.size, got.positions_bits, got.codebook_bits) == \
               (want.name, want.size, want.positions_bits, want.codebook_bits)
    # a dense layer's 400 000 positions and 4-bit assignments: far below int64's 6.4 MB
    assert (tmp_path / "_artifacts" / "a" / "layers.npz").stat().st_size < 400_000


def test_artifacts_written_before_the_compact_format_still_load(tmp_path):
    store = ResultsStore(tmp_path)
    old = layer("w", 100, [1, 5, 7], 4, 0)
    store.save_artifact("old", b"m", {"bits": 8}, [old])
    folder = tmp_path / "_artifacts" / "old"
    np.savez_compressed(folder / "layers.npz", **{"0.positions": old.positions, "0.codebook": old.codebook,
                                                  "0.assignments": old.assignments})  # the format of before
    [back] = store.load_artifact("old")[2]
    assert np.array_equal(back.positions, old.positions) and np.array_equal(back.assignments, old.assignments)


def test_packed_rows_read_back_the_same_and_replace_the_files_of_one_row(tmp_path):
    store = ResultsStore(tmp_path)
    store.prepare()
    store.write_rows([{"cell_id": f"{i:016x}", "status": "ok", "error_bound": 0.1 * i, "seed": i,
                       "started_at": pd.Timestamp("2026-12-06 07:00", tz="UTC") + pd.Timedelta(minutes=i),
                       "extras": "{}"} for i in range(5)])
    before = store.read().sort_values("cell_id").reset_index(drop=True)
    store.pack_rows()
    assert [p.name for p in store.row_files()] == [PACKED]
    pd.testing.assert_frame_equal(store.read().sort_values("cell_id").reset_index(drop=True), before)
    store.pack_rows()  # packing a packed folder keeps its rows
    assert len(store.read()) == 5


def test_the_shipped_reference_board_is_a_few_mb_and_its_evidence_loads():
    files = [p for p in REFERENCE.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 5 * 2**20
    store = ResultsStore(REFERENCE)
    rows = store.read()
    assert len(rows) >= 80 and [p.name for p in store.row_files()] == [PACKED]
    kept = [d.name for d in store.artifacts.iterdir()]
    assert kept and set(kept) <= set(rows["artifact_id"])
    for artifact_id in kept:
        message, meta, _ = store.load_artifact(artifact_id)  # checks the message against its sha256
        assert 8 * len(message) == meta["bits"]
    assert len(pd.read_parquet(REFERENCE)) == len(rows)  # its notes and script start with "_"
