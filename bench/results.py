"""The results folder: one tidy Parquet table written append-only, run sidecars and kept messages.

Layout of a results folder::

    <cell_id>.parquet          one file per finished cell, named by the cell (atomic: written under a
                               dot name, renamed), so a cell has one row whoever computed it
    packed.parquet             a finished board's rows in one file (``ResultsStore.pack_rows``: the
                               shipped reference board), read like the others
    _claims/<artifact_id>.<n>  the claim of the process computing a job (bench.claims)
    _runs/<run_id>.json        the full configuration and environment of each run
    _artifacts/<id>/           message.bin (the certificate's evidence), meta.json, layers.npz
    _ledger/<writer>.jsonl     every configuration ever evaluated (bench.ledger)
    _quarantine/               damaged row files and artifacts, moved aside (their cells are redone)

Names starting with ``_`` or ``.`` are ignored by pyarrow's dataset discovery, so
``pandas.read_parquet("results/")`` reads exactly the rows, whatever runs (killed or not) wrote them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from bench.api.contracts import LayerCode
from bench.atomic import leftover, write_atomically
from bench.api.params import ConfigError, canonical_json
from bench.quarantine import move_aside

if TYPE_CHECKING:
    from bench.claims import Claims

STR, F64, I64 = pa.string(), pa.float64(), pa.int64()

SCHEMA = pa.schema([
    ("run_id", STR), ("cell_id", STR), ("artifact_id", STR), ("status", STR), ("error", STR),
    ("task", STR), ("dataset", STR), ("model", STR), ("seed", I64),
    ("compressor", STR), ("compressor_version", STR), ("compressor_params", STR), ("grid_size", I64),
    ("bound", STR), ("bound_version", STR), ("bound_params", STR), ("bound_kind", STR),
    ("delta", F64), ("n_train", I64), ("n_params", I64), ("n_params_kept", I64),
    ("message_bits", F64), ("length_code_bits", F64), ("config_bits", F64), ("adjustment_nats", F64),
    ("kl_nats", F64), ("train_err", F64), ("test_err", F64), ("base_train_err", F64),
    ("base_test_err", F64), ("empirical_term", F64), ("error_bound", F64), ("is_vacuous", pa.bool_()),
    ("bound_minus_test", F64), ("compression_ratio", F64), ("flops", I64), ("base_flops", I64), ("mc_samples", I64),
    ("compress_seconds", F64), ("bound_seconds", F64), ("device", STR), ("torch_version", STR),
    ("bench_version", STR), ("plugin_versions", STR), ("git_commit", STR),
    ("started_at", pa.timestamp("us", tz="UTC")), ("extras", STR),
    # identities that decide what may be grouped, and what the ledger counts
    ("task_hash", STR), ("sample_id", STR), ("bound_grid_size", I64), ("ledger_configs", I64),
    # exact error counts of the decoded model (rates are these over n, in float64)
    ("train_errors", I64), ("test_errors", I64), ("n_test", I64), ("model_digest", STR),
    # what the certificate is about, and that classifier's own test error
    ("target", STR), ("target_test_err", F64), ("target_test_err_se", F64), ("target_test_errors", I64),
    ("target_test_trials", I64), ("refuted", pa.bool_()),
    # how error_bound follows from empirical_term and kl_nats (bench.kit.bounds.error_bound)
    ("form", STR), ("catoni_alpha", F64), ("delta_prime", F64), ("mc_errors", I64),
    # the decoded model's mean cross-entropy (nats), for rate-risk tables and plots
    ("train_ce", F64), ("test_ce", F64),
    # a data-dependent prior: the share of the training set it saw (n_train is then |S_bound|)
    ("prior_fraction", F64), ("n_prior", I64),
    # the version of the configuration code config_bits was measured with (bench.configcode)
    ("config_code", STR),
    # a data-dependent prior's own model on S_bound (bench.priordiag): its exact error count, and the
    # held-out bound it gives alone with 0 bits at the row's δ (what compression adds to is beside it)
    ("prior_train_errors", I64), ("prior_bound", F64),
])
COLUMNS = SCHEMA.names
PACKED = "packed.parquet"  # a finished board's rows in one file


def smallest_int(values: np.ndarray) -> np.ndarray:
    """``values`` in the smallest integer type that holds them exactly (what ``layers.npz`` stores)."""
    if values.size == 0:
        return values.astype(np.uint8)
    low, high = int(values.min()), int(values.max())
    for dtype in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return values.astype(dtype)
    return values.astype(np.int64)


def stored_positions(arrays: Any, i: int) -> np.ndarray:
    """Layer ``i``'s flat positions from ``layers.npz``: kept as steps, or (artifacts written before
    2026-12-06) as the positions themselves."""
    if f"{i}.position_steps" in arrays.files:
        return np.cumsum(arrays[f"{i}.position_steps"].astype(np.int64))
    return arrays[f"{i}.positions"].astype(np.int64)


class ResultsStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.artifacts = self.root / "_artifacts"
        self.quarantine = self.root / "_quarantine"

    def prepare(self) -> None:
        """Make the folder and prove it writable, before any work: a results path that is a file or
        cannot be written is a one-line error now, not a lost cell later."""
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"results folder {self.root} is a file, not a folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root, prefix=".probe-"):
                pass
        except OSError as exc:
            raise ConfigError(f"results folder {self.root} cannot be written: {exc.strerror or exc}") from None

    # ------------------------------------------------------------------------------------ rows
    def path_of(self, cell_id: str) -> Path:
        return self.root / f"{cell_id}.parquet"

    def write_rows(self, rows: Iterable[dict[str, Any]]) -> list[Path]:
        """Write each row as its cell's one file, atomically, so a cell has one row however many
        processes computed it. A ``failed`` or ``skipped`` row never replaces an ``ok`` one (a slow
        owner whose claim was taken over must not undo the taker's result). Missing columns become
        nulls; unknown ones are an error (a misspelt key must not become a silent null column)."""
        written = []
        for row in rows:
            unknown = sorted(set(row) - set(COLUMNS))
            if unknown:
                raise KeyError(f"unknown results column '{unknown[0]}'")
            path = self.path_of(row["cell_id"])
            if row.get("status") != "ok" and (self.row_of(row["cell_id"]) or {}).get("status") == "ok":
                continue
            table = pa.Table.from_pylist([{c: row.get(c) for c in COLUMNS}], schema=SCHEMA)
            written.append(write_atomically(path, lambda f: pq.write_table(table, f)))
        return written

    def pack_rows(self) -> Path:
        """Every row in one zstd-compressed file, ``packed.parquet``, in place of the files of one row:
        for a board that is finished and shipped (a one-row file carries ~17 KB of footer for 72
        columns; 80 rows take 2.2 MB as files of one, ~0.1 MB packed). The rows read back the same."""
        table = pa.Table.from_pandas(self.read(), schema=SCHEMA, preserve_index=False)
        files = [f for f in self.row_files() if f.name != PACKED]
        path = write_atomically(self.root / PACKED, lambda f: pq.write_table(table, f, compression="zstd"))
        for f in files:
            f.unlink()
        return path

    def row_of(self, cell_id: str) -> dict[str, Any] | None:
        """The cell's row, or ``None`` when it has none (a damaged file is set aside)."""
        path = self.path_of(cell_id)
        if not path.exists():
            return None
        try:
            table = ds.dataset([str(path)], schema=SCHEMA, format="parquet").to_table()
        except FileNotFoundError:
            return None
        except (pa.ArrowException, OSError) as exc:
            self.set_aside(path, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            return None
        rows = table.to_pylist()
        return rows[-1] if rows else None

    def settled(self, cell_ids: Iterable[str], since: float) -> set[str]:
        """Cells another process finished while this run waited for them: an ``ok`` row, or any row
        written after ``since`` (a cell another run found failing is not recomputed at once)."""
        out = set()
        for cell_id in cell_ids:
            row = self.row_of(cell_id)
            if row is None:
                continue
            try:
                fresh = self.path_of(cell_id).stat().st_mtime >= since
            except FileNotFoundError:
                continue
            if row["status"] == "ok" or fresh:
                out.add(cell_id)
        return out

    def row_files(self) -> list[Path]:
        """Finished row files (temporary files of a write in flight start with a dot)."""
        if not self.root.exists():
            return []
        return sorted(p for p in self.root.glob("*.parquet") if not p.name.startswith((".", "_")))

    def read(self) -> pd.DataFrame:
        """Every finished row file under today's schema (columns added later read as nulls). A damaged
        file is moved to ``_quarantine/`` with a one-line warning, and the rest is read."""
        files = self.row_files()
        if not files:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
        try:
            table = ds.dataset([str(f) for f in files], schema=SCHEMA, format="parquet").to_table()
        except (pa.ArrowException, OSError):
            good = [f for f in files if self._readable(f)]
            if not good:
                return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
            table = ds.dataset([str(f) for f in good], schema=SCHEMA, format="parquet").to_table()
        return table.to_pandas()

    def _readable(self, path: Path) -> bool:
        try:
            ds.dataset([str(path)], schema=SCHEMA, format="parquet").to_table()
            return True
        except (pa.ArrowException, OSError) as exc:
            self.set_aside(path, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            return False

    def set_aside(self, path: Path, why: str) -> None:
        """Move a damaged file or artifact folder to ``_quarantine/`` and say so in one line."""
        move_aside(path, self.quarantine, why, "its cells will be redone")

    def ok_cells(self) -> set[str]:
        df = self.read()
        return set(df.loc[df["status"] == "ok", "cell_id"])

    def write_sidecar(self, run_id: str, info: dict[str, Any]) -> None:
        data = json.dumps(json.loads(canonical_json(info)), indent=2).encode()
        write_atomically(self.root / "_runs" / f"{run_id}.json", data)

    def read_sidecar(self, run_id: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.root / "_runs" / f"{run_id}.json").read_text())
        except (OSError, ValueError):
            return None

    # ------------------------------------------------------------------------------- artifacts
    def artifact_dir(self, artifact_id: str) -> Path:
        return self.artifacts / artifact_id

    def has_artifact(self, artifact_id: str) -> bool:
        return (self.artifact_dir(artifact_id) / "meta.json").exists()

    def save_artifact(self, artifact_id: str, message: bytes, meta: dict[str, Any],
                      layers: list[LayerCode] | None) -> None:
        d = self.artifact_dir(artifact_id)
        write_atomically(d / "message.bin", message)
        if layers is not None:
            arrays: dict[str, np.ndarray] = {}
            for i, layer in enumerate(layers):
                # positions as steps (a dense layer's are all 1) and every integer in the smallest type
                # that holds it: a K-means LeNet-5 artifact's layers take 4x less than as int64
                positions = np.asarray(layer.positions, dtype=np.int64)
                arrays[f"{i}.position_steps"] = smallest_int(np.diff(positions, prepend=0))
                arrays[f"{i}.codebook"] = np.asarray(layer.codebook, dtype=np.float32)
                arrays[f"{i}.assignments"] = smallest_int(np.asarray(layer.assignments, dtype=np.int64))
            write_atomically(d / "layers.npz", lambda f: np.savez_compressed(f, **arrays))
            meta = {**meta, "layers": [
                {"name": l.name, "size": l.size, "positions_bits": l.positions_bits,
                 "codebook_bits": l.codebook_bits} for l in layers]}
        # meta.json last: its presence marks a complete artifact
        write_atomically(d / "meta.json", json.dumps(json.loads(canonical_json(meta)), indent=2))

    def load_artifact(self, artifact_id: str, check: bool = True) -> tuple[bytes, dict[str, Any], list[LayerCode] | None]:
        """The kept message, its meta data and layers; ``check``: the message must match its sha256."""
        d = self.artifact_dir(artifact_id)
        meta = json.loads((d / "meta.json").read_text())
        message = (d / "message.bin").read_bytes()
        if check and "sha256" in meta and hashlib.sha256(message).hexdigest() != meta["sha256"]:
            raise ValueError("message.bin does not match the sha256 in meta.json")
        layers = None
        if "layers" in meta:
            with np.load(d / "layers.npz") as arrays:
                layers = [
                    LayerCode(name=l["name"], size=l["size"], positions=stored_positions(arrays, i),
                              codebook=arrays[f"{i}.codebook"], assignments=arrays[f"{i}.assignments"].astype(np.int64),
                              positions_bits=l["positions_bits"], codebook_bits=l["codebook_bits"])
                    for i, l in enumerate(meta["layers"])
                ]
        return message, meta, layers

    def discard_partial(self, artifact_id: str) -> None:
        """Remove the artifact a stopped job had begun to write (a folder without its meta.json); only
        its claim's holder may, once the writer has ended."""
        d = self.artifact_dir(artifact_id)
        if d.is_dir() and not (d / "meta.json").exists():
            shutil.rmtree(d, ignore_errors=True)

    def sweep(self, claims: "Claims | None" = None) -> int:
        """Remove what writers of this host that have ended left behind: their temporary files, and
        (with ``claims``, taking each job's claim first) artifacts they had begun. What a killed run
        left is gone before the next one starts; returns how many things were removed."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for pattern in (".tmp-*", "_runs/.tmp-*", "_artifacts/*/.tmp-*"):
            for path in self.root.glob(pattern):
                if leftover(path):
                    path.unlink(missing_ok=True)
                    removed += 1
        if claims is not None and self.artifacts.is_dir():
            for d in self.artifacts.iterdir():
                if d.is_dir() and not (d / "meta.json").exists():
                    claim = claims.take(d.name)
                    if claim is not None:
                        with claim:
                            if d.is_dir() and not (d / "meta.json").exists():
                                self.discard_partial(d.name)
                                removed += 1
        return removed

    def load_artifact_or_set_aside(self, artifact_id: str):
        """``load_artifact``, or ``None`` after moving a damaged artifact to ``_quarantine/``."""
        if not self.has_artifact(artifact_id):
            return None
        try:
            return self.load_artifact(artifact_id)
        except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            self.set_aside(self.artifact_dir(artifact_id), f"{type(exc).__name__}: {exc}")
            return None
