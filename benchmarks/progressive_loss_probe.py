"""Probe: does a bounded training loss in the progressive stages (from the frontier's cached z) leave fewer
training errors than cross-entropy? Usage: .venv/bin/python benchmarks/progressive_loss_probe.py LOSS [PARAM] [EPOCHS] [LR]
LOSS: ce | clip (per-example CE clipped at PARAM) | drop (examples with margin < -PARAM excluded)

It runs the data-free frontier's `id` configuration (seed 0) with the training loss swapped, and prints
the training errors of the model it sends and the bits of its z section. It runs on the training set
outside `bench run`: write an entry per configuration into the ledger of the results folder whose
numbers you quote (bench.ledger.Ledger(folder).record). `ce 0 2 0.03` reproduces the frontier's 7 610
errors and 2 608 bits of z; the subspace (d = 1000) comes from the id cache or is trained first
(40 epochs, about 11 min on 2 cores)."""
import sys, time
import torch
import torch.nn.functional as F
import bench.kit.training as training
from bench.registry import load_registry
from bench.tasks import instantiate_task, BaseModels
from bench.cache import ModelCache, default_cache_dir
from bench.context import build_context
from bench.kit.evaluation import error_count
from bench_plugins.intrinsic_dim import IntrinsicDim

kind = sys.argv[1]; par = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 2; lr = float(sys.argv[4]) if len(sys.argv) > 4 else 0.03


def clipped(out, y):
    return F.cross_entropy(out, y, reduction="none").clamp(max=par).mean()


def dropped(out, y):
    true = out.gather(1, y[:, None])[:, 0]
    other = out.scatter(1, y[:, None], float("-inf")).max(1).values
    keep = ((true - other) > -par).float()
    return (F.cross_entropy(out, y, reduction="none") * keep).sum() / len(y)


if kind == "clip":
    training.loss_fn = lambda t: clipped
elif kind == "drop":
    training.loss_fn = lambda t: dropped
reg = load_registry()
task = instantiate_task(reg.get("tasks", "fashion-mnist-lenet5"), reg)
cpu = torch.device("cpu")
ctx = build_context(task, 0, cpu, BaseModels(ModelCache(default_cache_dir()), cpu, None), 0.05)
comp = IntrinsicDim(dim=1000, codebook="lattice", symbol_code="gaussian", quantizer="progressive", qat_epochs=0,
                    progressive_stages=7, scale="init", progressive_lr=lr, progressive_epochs=epochs,
                    scale_power=2.0, levels=9, epochs=40, lattice_step="max", layout="sections", weight_decay=0.0)
t = time.time()
out = comp.compress(ctx)
err = error_count(out.model, ctx.task.data.train)
bits = out.extras["section_bits"]["z"]
print(f"RESULT {kind} {par} ep{epochs} lr{lr}: errors {err} payload bits {bits} sum {err + bits} "
      f"stages {[round(h['err'], 4) for h in out.extras['progressive_stages']]} ({time.time() - t:.0f}s)", flush=True)
