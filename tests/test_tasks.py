"""Datasets (fixed splits, IDX files, clear errors), models built by name, seeded initialization and
the content-addressed training cache."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from bench.api.contracts import DatasetUnavailable, TaskSpec
from bench.registry import load_registry
from bench.tasks import BaseModels, instantiate_task, seeded_model_factory
from bench.cache import ModelCache
import bench_plugins.datasets as ds


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def test_digits_split_is_fixed(registry):
    a = registry.get("datasets", "digits")().load(None, False)
    b = registry.get("datasets", "digits")().load(None, False)
    assert (len(a.train), len(a.test)) == (1347, 450)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert a.input_shape == (1, 8, 8) and a.num_classes == 10


def test_train_fraction_is_deterministic_and_stratified(registry):
    full = registry.get("datasets", "digits")().load(None, False)
    sub = registry.get("datasets", "digits")(train_fraction=0.1).load(None, False)
    again = registry.get("datasets", "digits")(train_fraction=0.1).load(None, False)
    assert torch.equal(sub.train.y, again.train.y)
    assert abs(len(sub.train) - 135) <= 10
    assert set(sub.train.y.tolist()) == set(range(10))
    assert torch.equal(sub.test.x, full.test.x)  # the test split never changes


def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_idx_files_from_data_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(ds, "FASHION_MNIST_DEBIAN", tmp_path / "absent")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 12)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    bundle = ds.FashionMNIST().load(tmp_path, download=False)
    assert bundle.train.x.shape == (30, 1, 28, 28) and bundle.test.y.tolist() == [i % 10 for i in range(12)]
    assert bundle.train.x.dtype == torch.float32


def test_missing_datasets_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(ds, "FASHION_MNIST_DEBIAN", tmp_path / "absent")
    monkeypatch.setattr(ds, "DEFAULT_DATA_ROOT", tmp_path / "absent")
    with pytest.raises(DatasetUnavailable, match="apt-get install dataset-fashion-mnist"):
        ds.FashionMNIST().load(tmp_path / "none", download=False)
    with pytest.raises(DatasetUnavailable, match="--download"):
        ds.MNIST().load(tmp_path / "none", download=False)


def test_linear_regression_generator():
    bundle = ds.LinearRegression(d=6, n=10, n_test=7).load(None, False)
    assert bundle.train.x.shape == (10, 6) and bundle.test.y.shape == (7,)
    assert bundle.task_type == "regression"
    assert ds.linear_regression_w_star(6, (1.0, -1.0)).tolist() == [1, 1, 1, -1, -1, -1]


@pytest.mark.parametrize("model, params, shape, classes", [
    ("mlp", {"widths": [7, 5]}, (1, 8, 8), 10),
    ("lenet-300-100", {}, (1, 28, 28), 10),
    ("lenet5", {}, (1, 28, 28), 10),
    ("lenet5", {}, (3, 32, 32), 10),
    ("convnet", {"k": 4}, (3, 32, 32), 10),
    ("convnet", {"k": 2}, (1, 8, 8), 3),
    ("timm:resnet10t", {}, (3, 32, 32), 10),
    ("linear", {}, (5,), 0),
])
def test_models_build_for_the_dataset(registry, model, params, shape, classes):
    family, _, arch = model.partition(":")
    kwargs = {**params, **({"arch": arch} if arch else {})}
    net = registry.get("models", model)(**kwargs).build(shape, classes)
    out = net.eval()(torch.zeros(2, *shape))
    assert out.shape == ((2, classes) if classes else (2,))


def test_lenet5_has_the_seeds_parameter_count(registry):
    net = registry.get("models", "lenet5")().build((1, 28, 28), 10)
    assert sum(p.numel() for p in net.parameters()) == 431_080
    # fc = 64: conv 520 + 25 050, hidden 800·64 + 64 = 51 264, output 64·10 + 10 = 650
    narrow = registry.get("models", "lenet5")(fc=64).build((1, 28, 28), 10)
    assert sum(p.numel() for p in narrow.parameters()) == 77_484


def test_retired_model_options_say_so_in_one_line(registry):
    from bench.api.params import ConfigError

    for family, option, says in (("lenet5", {"flip": True}, "model 'lenet5': parameter 'flip' was removed"),
                                 ("convnet", {"norm": "group"}, "model 'convnet': parameter 'norm' was removed")):
        with pytest.raises(ConfigError, match=says):
            registry.get("models", family)(**option)


def test_seeded_initialization_ignores_global_rng(registry):
    task = instantiate_task(registry.get("tasks", "digits-mlp"), registry)
    make = seeded_model_factory(task, 3, torch.device("cpu"))
    a = make()
    torch.manual_seed(12345)
    b = make()
    c = seeded_model_factory(task, 4, torch.device("cpu"))()
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_training_cache_is_content_addressed(registry, tmp_path):
    spec = TaskSpec(name="t", dataset="digits", model="mlp", model_params={"widths": [4]}, recipe={"epochs": 1})
    task = instantiate_task(spec, registry)
    first = BaseModels(ModelCache(tmp_path), torch.device("cpu"), None)
    model = first.get(task, 0)
    files = sorted(p.name for p in (tmp_path / "models").iterdir() if not p.name.startswith("."))
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".pt")
    second = BaseModels(ModelCache(tmp_path), torch.device("cpu"), None)
    again = second.get(task, 0)  # loaded, not retrained
    assert all(torch.equal(model.state_dict()[k], again.state_dict()[k]) for k in model.state_dict())
    other = instantiate_task(TaskSpec(name="t", dataset="digits", model="mlp", model_params={"widths": [4]},
                                      recipe={"epochs": 2}), registry)
    assert first.key(task, 0) != first.key(other, 0) and first.key(task, 0) != first.key(task, 1)


def test_inference_flops_count_nonzero_weights(registry):
    from bench.stats import inference_flops

    net = registry.get("models", "lenet5")().build((1, 28, 28), 10)
    # conv1 500 weights x 24*24 positions, conv2 25000 x 8*8, fc 400000 and 5000; 2 FLOPs per multiply-add
    assert inference_flops(net, (1, 28, 28)) == 2 * (500 * 576 + 25000 * 64 + 400000 + 5000)
    with torch.no_grad():
        net.classifier[1].weight[:250] = 0  # half of fc1's rows pruned
    assert inference_flops(net, (1, 28, 28)) == 2 * (500 * 576 + 25000 * 64 + 200000 + 5000)
