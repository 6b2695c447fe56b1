"""The model cache heals: an entry that does not load or does not match its digest is set aside with a
one-line warning and trained again, and two processes that need the same missing entry train it once."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from bench.cache import ModelCache


def model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))


def same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_an_entry_is_saved_with_the_digest_of_its_bytes(tmp_path):
    cache = ModelCache(tmp_path)
    cache.save("k", model(0), {"what": "test"})
    pt, meta = tmp_path / "models" / "k.pt", json.loads((tmp_path / "models" / "k.json").read_text())
    assert meta["sha256"] == hashlib.sha256(pt.read_bytes()).hexdigest() and meta["config"] == {"what": "test"}
    loaded = model(1)
    assert cache.load("k", loaded) and same(loaded, model(0))
    assert not cache.load("absent", model(1))


def _truncate(pt):
    pt.write_bytes(pt.read_bytes()[:100])


def _empty(pt):
    pt.write_bytes(b"")


def _other_weights(pt):
    """A whole, loadable state dict, but not the one the digest was taken of: without the digest check
    the cache would hand out the wrong weights silently."""
    buffer = io.BytesIO()
    torch.save(model(7).state_dict(), buffer)
    pt.write_bytes(buffer.getvalue())


@pytest.mark.parametrize("damage", [_truncate, _empty, _other_weights], ids=["truncated", "zero-byte", "digest"])
def test_a_damaged_entry_is_set_aside_with_one_line_and_rebuilt(tmp_path, capsys, damage):
    cache = ModelCache(tmp_path)
    cache.save("k", model(0), {})
    pt = tmp_path / "models" / "k.pt"
    damage(pt)
    capsys.readouterr()
    target = model(1)
    assert not cache.load("k", target)  # the caller trains it again
    assert same(target, model(1))  # nothing half-loaded into the caller's model
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(pt) in lines[0] and "_quarantine" in lines[0], lines
    assert not pt.exists() and (tmp_path / "models" / "_quarantine" / "k.pt").exists()
    cache.save("k", model(0), {})  # rebuilt
    again = model(1)
    assert cache.load("k", again) and same(again, model(0))


def test_an_entry_from_before_digests_loads_and_gains_one(tmp_path):
    cache = ModelCache(tmp_path)
    cache.save("k", model(0), {"what": "old"})
    meta_path = tmp_path / "models" / "k.json"
    meta = json.loads(meta_path.read_text())
    del meta["sha256"]
    meta_path.write_text(json.dumps(meta))
    loaded = model(1)
    assert cache.load("k", loaded) and same(loaded, model(0))
    meta = json.loads(meta_path.read_text())
    assert meta["sha256"] == hashlib.sha256((tmp_path / "models" / "k.pt").read_bytes()).hexdigest()
    assert meta["config"] == {"what": "old"}


TRAIN_ONCE = textwrap.dedent("""
    import sys, torch
    from bench.api.contracts import TaskSpec
    from bench.cache import ModelCache
    from bench.registry import load_registry
    from bench.tasks import BaseModels, instantiate_task

    trained = []
    def progress(total=None, desc=""):
        trained.append(desc)
        return None
    spec = TaskSpec(name="t", dataset="digits", model="mlp", model_params={"widths": [8]}, recipe={"epochs": 3})
    task = instantiate_task(spec, load_registry())
    BaseModels(ModelCache(sys.argv[1]), torch.device("cpu"), progress).get(task, 0)
    print(len(trained))
""")


def test_two_processes_that_need_the_same_entry_train_it_once(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", TRAIN_ONCE, str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert sorted(int(out.strip()) for out, _ in outs) == [0, 1]  # one trained, the other loaded its model
