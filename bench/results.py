"""The results folder: one tidy Parquet table written append-only, run sidecars and kept messages.

Layout of a results folder::

    <run_id>-<seq>.parquet     one file per finished cell (atomic: written under a dot name, renamed)
    _runs/<run_id>.json        the full configuration and environment of each run
    _artifacts/<id>/           message.bin (the certificate's evidence), meta.json, layers.npz

Names starting with ``_`` or ``.`` are ignored by pyarrow's dataset discovery, so
``pandas.read_parquet("results/")`` reads exactly the rows, whatever runs (killed or not) wrote them.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from bench.contracts import LayerCode
from bench.params import canonical_json

STR, F64, I64 = pa.string(), pa.float64(), pa.int64()

SCHEMA = pa.schema([
    ("run_id", STR), ("cell_id", STR), ("artifact_id", STR), ("status", STR), ("error", STR),
    ("task", STR), ("dataset", STR), ("model", STR), ("seed", I64),
    ("compressor", STR), ("compressor_version", STR), ("compressor_params", STR), ("grid_size", I64),
    ("bound", STR), ("bound_version", STR), ("bound_params", STR), ("bound_kind", STR),
    ("delta", F64), ("n_train", I64), ("n_params", I64), ("n_params_kept", I64),
    ("message_bits", F64), ("length_code_bits", F64), ("hparam_bits", F64), ("adjustment_nats", F64),
    ("kl_nats", F64), ("train_err", F64), ("test_err", F64), ("base_train_err", F64),
    ("base_test_err", F64), ("empirical_term", F64), ("error_bound", F64), ("is_vacuous", pa.bool_()),
    ("bound_minus_test", F64), ("compression_ratio", F64), ("flops", I64), ("base_flops", I64), ("mc_samples", I64),
    ("compress_seconds", F64), ("bound_seconds", F64), ("device", STR), ("torch_version", STR),
    ("bench_version", STR), ("plugin_versions", STR), ("git_commit", STR),
    ("started_at", pa.timestamp("us", tz="UTC")), ("extras", STR),
])
COLUMNS = SCHEMA.names


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", delete=False) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(f.name, path)


class ResultsStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.artifacts = self.root / "_artifacts"

    # ------------------------------------------------------------------------------------ rows
    def append(self, rows: Iterable[dict[str, Any]], run_id: str, seq: int) -> Path:
        """Write rows as one Parquet file, atomically; missing columns become nulls."""
        rows = list(rows)
        table = pa.Table.from_pylist([{c: r.get(c) for c in COLUMNS} for r in rows], schema=SCHEMA)
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / f"{run_id}-{seq:05d}.parquet"
        with tempfile.NamedTemporaryFile(dir=self.root, prefix=".tmp-", suffix=".parquet", delete=False) as f:
            tmp = Path(f.name)
        pq.write_table(table, tmp)
        os.replace(tmp, final)
        return final

    def row_files(self) -> list[Path]:
        """Finished row files (temporary files of a write in flight start with a dot)."""
        if not self.root.exists():
            return []
        return sorted(p for p in self.root.glob("*.parquet") if not p.name.startswith((".", "_")))

    def read(self) -> pd.DataFrame:
        files = self.row_files()
        if not files:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
        # the finished row files only, under today's schema (columns added later read as nulls)
        return ds.dataset([str(f) for f in files], schema=SCHEMA, format="parquet").to_table().to_pandas()

    def ok_cells(self) -> set[str]:
        df = self.read()
        return set(df.loc[df["status"] == "ok", "cell_id"])

    def write_sidecar(self, run_id: str, info: dict[str, Any]) -> None:
        data = json.dumps(json.loads(canonical_json(info)), indent=2).encode()
        _atomic_write_bytes(self.root / "_runs" / f"{run_id}.json", data)

    # ------------------------------------------------------------------------------- artifacts
    def artifact_dir(self, artifact_id: str) -> Path:
        return self.artifacts / artifact_id

    def has_artifact(self, artifact_id: str) -> bool:
        return (self.artifact_dir(artifact_id) / "meta.json").exists()

    def save_artifact(self, artifact_id: str, message: bytes, meta: dict[str, Any],
                      layers: list[LayerCode] | None) -> None:
        d = self.artifact_dir(artifact_id)
        _atomic_write_bytes(d / "message.bin", message)
        if layers is not None:
            arrays: dict[str, np.ndarray] = {}
            for i, layer in enumerate(layers):
                arrays[f"{i}.positions"] = np.asarray(layer.positions, dtype=np.int64)
                arrays[f"{i}.codebook"] = np.asarray(layer.codebook, dtype=np.float32)
                arrays[f"{i}.assignments"] = np.asarray(layer.assignments, dtype=np.int64)
            with tempfile.NamedTemporaryFile(dir=d, prefix=".tmp-", suffix=".npz", delete=False) as f:
                np.savez(f, **arrays)
            os.replace(f.name, d / "layers.npz")
            meta = {**meta, "layers": [
                {"name": l.name, "size": l.size, "positions_bits": l.positions_bits,
                 "codebook_bits": l.codebook_bits} for l in layers]}
        # meta.json last: its presence marks a complete artifact
        _atomic_write_bytes(d / "meta.json", json.dumps(json.loads(canonical_json(meta)), indent=2).encode())

    def load_artifact(self, artifact_id: str) -> tuple[bytes, dict[str, Any], list[LayerCode] | None]:
        d = self.artifact_dir(artifact_id)
        meta = json.loads((d / "meta.json").read_text())
        message = (d / "message.bin").read_bytes()
        layers = None
        if "layers" in meta:
            with np.load(d / "layers.npz") as arrays:
                layers = [
                    LayerCode(name=l["name"], size=l["size"], positions=arrays[f"{i}.positions"],
                              codebook=arrays[f"{i}.codebook"], assignments=arrays[f"{i}.assignments"],
                              positions_bits=l["positions_bits"], codebook_bits=l["codebook_bits"])
                    for i, l in enumerate(meta["layers"])
                ]
        return message, meta, layers
