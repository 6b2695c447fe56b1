"""Codebook quantization and the shared message layout: exact round trips, BatchNorm included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.kit import coding
from bench.kit.quantization import (CodebookModel, TensorCode, coded_tensor_names, decode_model, encode_model,
                                kmeans_1d, nearest, quantize_tensors, rest_tensor_names)
from bench_plugins.models import ConvNet, MLP


def convnet() -> torch.nn.Module:
    torch.manual_seed(0)
    model = ConvNet(k=2).build((1, 8, 8), 3)
    model.train()
    model(torch.randn(16, 1, 8, 8))  # non-trivial BatchNorm running statistics
    return model.eval()


def test_kmeans_1d_finds_clusters_and_assigns_nearest():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(-1, 0.01, 500), rng.normal(2, 0.01, 500)])
    codebook, assign = kmeans_1d(values, 2, seed=0)
    assert np.allclose(codebook, [-1, 2], atol=0.01)
    assert (assign == (values > 0.5)).all()
    assert (nearest(values, codebook) == assign).all()


def test_kmeans_1d_with_fewer_distinct_values_than_levels():
    codebook, assign = kmeans_1d(np.array([0.5, 0.5, -1.0]), 8, seed=0)
    assert codebook.tolist() == [-1.0, 0.5] and assign.tolist() == [1, 1, 0]


def test_tensor_names_cover_every_floating_tensor():
    model = convnet()
    coded, rest = coded_tensor_names(model), rest_tensor_names(model)
    floating = [k for k, v in model.state_dict().items() if v.is_floating_point()]
    assert sorted(coded + rest) == sorted(floating)
    assert any("running_var" in k for k in rest) and all(model.state_dict()[k].dim() >= 2 for k in coded)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("precision", ["float16", "float32"])
def test_encode_decode_is_exact(sparse, precision):
    model = convnet()
    masks = None
    if sparse:
        rng = np.random.default_rng(1)
        masks = {n: rng.random(model.get_parameter(n).shape) < 0.3 for n in coded_tensor_names(model)}
    codes = quantize_tensors(model, 4, seed=0, init="linear", masks=masks)
    encoded = encode_model(model, codes, sparse, precision, precision)
    decoded = decode_model(encoded.message, convnet(), sparse, precision, precision)
    a, b = encoded.model.state_dict(), decoded.state_dict()
    for key in a:
        if a[key].is_floating_point():
            assert torch.equal(a[key], b[key]), key
    x = torch.randn(5, 1, 8, 8)
    assert torch.equal(encoded.model(x), decoded(x))
    assert sum(encoded.section_bits.values()) <= 8 * len(encoded.message)
    if sparse:
        w = a[coded_tensor_names(model)[0]].flatten()
        assert (w[~torch.from_numpy(masks[coded_tensor_names(model)[0]].ravel())] == 0).all()


def test_layers_expose_s_c_q():
    model = convnet()
    codes = quantize_tensors(model, 3, seed=0, init="kmeans++")
    encoded = encode_model(model, codes, False, "float16", "float16")
    for layer, code in zip(encoded.layers, codes):
        assert layer.size == code.size and len(layer.positions) == layer.size
        assert len(layer.codebook) <= 3 and layer.assignments.max() < len(layer.codebook)
        assert layer.codebook_bits == encoded.section_bits[f"{layer.name}.C"]


def test_centroid_finetuning_keeps_weight_sharing_and_lowers_loss():
    torch.manual_seed(0)
    model = MLP(widths=(16,)).build((4,), 2)
    x = torch.randn(256, 4)
    y = (x[:, 0] > 0).long()
    codes = quantize_tensors(model, 2, seed=0, init="linear")
    wrapped = CodebookModel(model, codes)
    before = torch.nn.functional.cross_entropy(wrapped(x), y).item()
    from bench.api.contracts import Split
    wrapped.finetune(Split(x, y), epochs=20, lr=0.05, batch_size=64, generator=torch.Generator().manual_seed(0),
                     task_type="classification")
    after = torch.nn.functional.cross_entropy(wrapped(x), y).item()
    assert after < before
    encoded = encode_model(model, codes, False, "float32", "float32")
    for name in coded_tensor_names(model):
        assert len(torch.unique(encoded.model.get_parameter(name))) <= 2


def test_centroid_finetuning_is_the_same_every_time():
    """Two threads summing a codebook's gradient over many weights: the sum's order must not depend on
    the threads' timing, or the same configuration and seed give different messages (as cb[assign]'s
    backward did on Fashion-MNIST)."""
    from bench.api.contracts import Split

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        results = []
        for _ in range(3):
            torch.manual_seed(0)
            model = MLP(widths=(512,)).build((256,), 10)
            x, y = torch.randn(512, 256), torch.randint(0, 10, (512,))
            wrapped = CodebookModel(model, quantize_tensors(model, 2, seed=0, init="linear"))
            wrapped.finetune(Split(x, y), epochs=2, lr=0.01, batch_size=256,
                             generator=torch.Generator().manual_seed(0), task_type="classification")
            results.append(torch.cat([cb.detach().flatten() for cb in wrapped.codebooks]))
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(results[0], r) for r in results[1:])


def test_corrupted_message_raises_corrupt_message():
    model = convnet()
    encoded = encode_model(model, quantize_tensors(model, 4, 0, "linear"), False, "float16", "float16")
    with pytest.raises(coding.CorruptMessage):
        decode_model(encoded.message[:-3], convnet(), False, "float16", "float16")


def test_codes_must_match_the_architecture():
    model = convnet()
    codes = quantize_tensors(model, 4, 0, "linear")
    with pytest.raises(ValueError, match="cover exactly"):
        encode_model(model, codes[1:], False, "float16", "float16")
    bad = [TensorCode(c.name, c.shape, np.arange(c.size), c.codebook, c.assignments) for c in codes]
    with pytest.raises(ValueError, match="positions given for a dense code"):
        encode_model(model, bad, False, "float16", "float16")


# ------------------------------------------------------------------ the codebook's construction
def test_nearest_is_the_brute_force_nearest_centroid():
    from bench.kit.quantization import nearest
    rng = np.random.default_rng(3)
    codebook = np.sort(rng.normal(size=7)).astype(np.float32)
    values = np.concatenate([rng.normal(size=500), codebook.astype(np.float64) + 1e-7])
    brute = np.abs(values[:, None] - codebook.astype(np.float64)[None, :]).argmin(axis=1)
    got = nearest(values, codebook)
    assert got.dtype == np.int64 and np.array_equal(got, brute)
    one = nearest(values[:5], codebook[:1])
    assert one.dtype == np.int64 and one.shape == (5,) and not one.any()


def test_kmeans_1d_edge_cases_and_seeding():
    from bench.kit.quantization import kmeans_1d
    codebook, assignments = kmeans_1d(np.zeros(0), 4, seed=0)
    assert codebook.shape == (0,) and codebook.dtype == np.float32
    assert assignments.shape == (0,) and assignments.dtype == np.int64
    codebook, assignments = kmeans_1d(np.array([0.5, -1.0, 0.5, 2.0]), 3, seed=0)  # as many distinct values as levels
    assert codebook.dtype == np.float32 and codebook.tolist() == [-1.0, 0.5, 2.0]
    assert assignments.tolist() == [1, 0, 1, 2]
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(-2, 0.1, 300), rng.normal(0, 0.1, 300), rng.normal(3, 0.1, 300)])
    for init in ("linear", "kmeans++"):
        codebook, assignments = kmeans_1d(values, 3, seed=1, init=init)
        assert codebook.dtype == np.float32 and np.allclose(codebook, [-2, 0, 3], atol=0.05)
        assert np.array_equal(assignments, np.repeat([0, 1, 2], 300))
    # fitting on a seeded subsample: the same seed gives the same codebook, and all values are assigned
    from bench.kit.quantization import nearest
    values = rng.normal(size=5000)
    codebook, assignments = kmeans_1d(values, 8, seed=4, max_fit=1000)
    again = kmeans_1d(values, 8, seed=4, max_fit=1000)
    assert np.array_equal(codebook, again[0]) and np.array_equal(assignments, nearest(values, codebook))
    assert codebook.shape == (8,) and np.all(np.diff(codebook) > 0)


# ------------------------------------------- a network-wide codebook and vector quantization
def _small() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(7, 5), torch.nn.BatchNorm1d(5), torch.nn.ReLU(),
                               torch.nn.Linear(5, 3)).eval()


@pytest.mark.parametrize("shared,block", [(True, 1), (False, 2), (True, 3)])
def test_shared_codebook_and_blocks_round_trip_into_a_fresh_template(shared, block):
    from bench.kit.kmeans import weighted_quantize_tensors
    from bench.cell import models_agree
    model = _small()
    ones = {n: np.ones(tuple(p.shape)) for n, p in model.named_parameters() if p.dim() > 1}
    codes = weighted_quantize_tensors(model, ones, 3, seed=0, scope="network" if shared else "layer", block=block,
                                      beta=0.1)
    encoded = encode_model(model, codes, False, "float16", "float32", shared_codebook=shared, block=block)
    names = [name for name, _ in encoded.sections]
    assert ("codebook" in names) == shared and any(name.endswith(".C") for name in names) != shared
    template = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(7, 5), torch.nn.BatchNorm1d(5),
                                   torch.nn.ReLU(), torch.nn.Linear(5, 3)).eval()  # freshly seeded, not a copy
    decoded = decode_model(encoded.message, template, False, "float16", "float32", shared_codebook=shared, block=block)
    assert models_agree(encoded.model, decoded, torch.randn(4, 7)) is None
    for a, b in zip(encoded.model.state_dict().values(), decoded.state_dict().values()):
        assert torch.equal(a, b)
    state = decoded.state_dict()
    for layer in encoded.layers:
        w = state[layer.name].flatten().numpy()
        assert np.array_equal(w[layer.positions], layer.codebook[layer.assignments])
    if shared:  # written once, counted once
        assert [layer.codebook_bits > 0 for layer in encoded.layers] == [True, False]
        assert np.array_equal(encoded.layers[0].codebook, encoded.layers[1].codebook)
    with pytest.raises(coding.CorruptMessage):
        decode_model(encoded.message[:-3], template, False, "float16", "float32", shared_codebook=shared, block=block)


def test_encode_model_refuses_codes_it_cannot_lay_out():
    from bench.kit.kmeans import weighted_quantize_tensors
    model = _small()
    ones = {n: np.ones(tuple(p.shape)) for n, p in model.named_parameters() if p.dim() > 1}
    codes = weighted_quantize_tensors(model, ones, 3, seed=0, scope="layer", block=1, beta=0.1)
    with pytest.raises(ValueError, match="^codes must cover exactly the coded tensors of the model, in order$"):
        encode_model(model, codes[::-1], False, "float16", "float32")
    with pytest.raises(ValueError, match="^every code must have block 2 and a whole number of codewords$"):
        encode_model(model, codes, False, "float16", "float32", block=2)
    different = [codes[0], TensorCode(**{**codes[1].__dict__, "codebook": codes[1].codebook + 1})]
    with pytest.raises(ValueError, match="^shared_codebook needs the same codebook in every code$"):
        encode_model(model, different, False, "float16", "float32", shared_codebook=True)


def test_layer_bits_are_their_sections_and_the_rest_must_fit_exactly():
    from bench.kit.quantization import quantize_tensors, section_names
    model = _small()
    codes = quantize_tensors(model, 4, 0, "linear")
    encoded = encode_model(model, codes, False, "float16", "float32")
    bits = dict(encoded.sections)
    for layer in encoded.layers:
        assert layer.positions_bits == 0.0 and layer.codebook_bits == bits[f"{layer.name}.C"] > 0
    names = section_names(model, False)
    sections = coding.unpack_sections(encoded.message, names)
    rest = coding.decode_floats(sections["rest"], "float32")
    for cut, word in ((rest[:-1], "shorter"), (np.r_[rest, 1.0].astype(np.float32), "longer")):
        bad = coding.pack_sections({**sections, "rest": coding.encode_floats(cut, "float32")})
        with pytest.raises(coding.CorruptMessage, match=f"^rest section is {word} than the architecture needs$"):
            decode_model(bad, _small(), False, "float16", "float32")
    wrong = {**sections, f"{codes[0].name}.Q": coding.encode_symbols(codes[0].assignments[:-1], 4)}
    with pytest.raises(coding.CorruptMessage, match=f"^{codes[0].name}: assignments do not match the positions or "
                                                    "the codebook$"):
        decode_model(coding.pack_sections(wrong), _small(), False, "float16", "float32")
    decoded = decode_model(encoded.message, _small(), False, "float16", "float32")
    assert all(a.dtype == b.dtype for a, b in zip(model.state_dict().values(), decoded.state_dict().values()))
