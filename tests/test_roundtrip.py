"""Every built-in compressor's message decodes, from the prior alone, into a *freshly seeded template*
(never a copy of the model that was compressed) bit-for-bit equal to the compressor's own model, on an
MLP and on a ConvNet with BatchNorm (whose running statistics must travel in the message)."""

from __future__ import annotations

import pytest
import torch

from bench.progress import progress
from bench.registry import load_registry
from bench.context import build_context
from bench.kit.models import first_difference, state_digest
from bench.tasks import BaseModels, instantiate_task, merge_task, prior_from_spec, prior_spec
from bench.cache import ModelCache, default_cache_dir

TASKS = {
    "mlp": {"dataset": "digits", "model": "mlp", "model_params": {"widths": [16]},
            "recipe": {"epochs": 2, "batch_size": 128}},
    "convnet-bn": {"dataset": "digits", "model": "convnet", "model_params": {"k": 2},
                   "recipe": {"epochs": 1, "batch_size": 128}},
}
COMPRESSORS = {
    "dense": {},
    "quantize": {"levels": 4},
    "prune": {"sparsity": 0.5, "steps": 1, "retrain_epochs": 1, "levels": 4},
    "dns": {"epochs": 1, "levels": 4, "sparsity": 0.9},
    "hw-kmeans": {"levels": 4, "curvature_examples": 256},
    "drhw-kmeans": {"levels": 4, "curvature_examples": 256, "beta": 0.01},
    "id": {"dim": 30, "epochs": 1, "lr": 0.05, "levels": 5, "progressive_stages": 2, "progressive_epochs": 1},
}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.mark.parametrize("task_name", list(TASKS))
@pytest.mark.parametrize("compressor", list(COMPRESSORS))
def test_round_trip_into_a_freshly_seeded_template(registry, task_name, compressor):
    task = instantiate_task(merge_task(None, TASKS[task_name], f"roundtrip-{task_name}"), registry)
    device = torch.device("cpu")
    ctx = build_context(task, 0, device, BaseModels(ModelCache(default_cache_dir()), device, progress), 0.05)
    cls = registry.get("compressors", compressor)
    compressed = cls(**COMPRESSORS[compressor]).compress(ctx)
    prior = prior_from_spec(prior_spec(task, 0, device), registry)  # rebuilt from plain data
    # the decoder gets its decoder-side parameters only, as the harness's decoding process does
    decoder = cls.for_decoding(cls.decoder_side(cls(**COMPRESSORS[compressor]).params_dict()))
    decoded = decoder.decode(compressed.message, prior)
    assert state_digest(decoded) == state_digest(compressed.model), first_difference(compressed.model, decoded)
    template = prior.make_model()
    assert state_digest(template) != state_digest(decoded)  # the template itself is not the answer
    if task_name == "convnet-bn":  # the statistics came from the message, not from the template
        stats = [b for n, b in decoded.named_buffers() if n.endswith("running_var")]
        assert stats and not all(bool((s == 1).all()) for s in stats)


def test_a_decoder_cannot_read_an_encoder_side_parameter(registry):
    cls = registry.get("compressors", "id")
    decoder = cls.for_decoding(cls.decoder_side(cls(dim=30, epochs=3).params_dict()))
    assert decoder.params.dim == 30  # decoder-side: there
    with pytest.raises(AttributeError, match="compressor 'id': parameter 'epochs' is encoder-side, so decode does "
                                             "not receive it"):
        decoder.params.epochs
    assert cls.decoder_side({"dim": 30, "epochs": 3}) == {"dim": 30}
