"""bench.kit.curvature: the diagonal GGN / Fisher against closed forms (linear models) and a naive per-example
loop, for both methods (torch.func vmap and layer hooks), chunking and subset invariance, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.api.contracts import Split
from bench.kit.curvature import diagonal_curvature, diagonal_curvature_loop, sample_targets


def conv_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 3, (3, 2), padding=(1, 2), stride=(2, 1), dilation=(1, 2)), nn.BatchNorm2d(3), nn.ReLU(),
        nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 3 * 8, 6), nn.Tanh(), nn.Linear(6, 3),
    )
    model[1].running_mean.uniform_(-1, 1)
    model[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


def conv_data(n: int = 29) -> Split:
    g = torch.Generator().manual_seed(1)
    return Split(torch.randn(n, 2, 9, 8, generator=g), torch.randint(0, 3, (n,), generator=g))


def close(a: dict, b: dict, rtol: float = 1e-4) -> bool:
    return a.keys() == b.keys() and all(
        torch.allclose(a[k], b[k], rtol=rtol, atol=rtol * float(b[k].abs().max())) for k in a)


@pytest.mark.parametrize("kind", ["exact", "sampled", "empirical"])
def test_both_methods_match_the_naive_loop(kind):
    model, data = conv_model(), conv_data(11)
    names = [n for n, _ in model.named_parameters() if not n.startswith("1.")]  # BatchNorm: vmap only
    loop = diagonal_curvature_loop(model, data, kind, samples=2, generator=torch.Generator().manual_seed(5))
    for method in ("vmap", "hooks"):
        fast = diagonal_curvature(model, data, kind, samples=2, generator=torch.Generator().manual_seed(5),
                                  names=names, method=method, chunk_size=4)
        assert close(fast, {k: loop[k] for k in names}), method
    every = diagonal_curvature(model, data, kind, samples=2, generator=torch.Generator().manual_seed(5))
    assert close(every, loop)  # 'auto' falls back to vmap for the BatchNorm parameters


def test_linear_softmax_closed_forms():
    """For logits Wx: GGN diag = mean p_c(1-p_c) x_j², empirical Fisher = mean (p_c - [y=c])² x_j²."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 4, bias=False))
    x, y = torch.randn(40, 5), torch.randint(0, 4, (40,))
    p = torch.softmax(model(x), 1).detach()
    onehot = nn.functional.one_hot(y, 4).float()
    ggn = torch.einsum("nc,nj->cj", p * (1 - p), x**2) / 40
    emp = torch.einsum("nc,nj->cj", (p - onehot) ** 2, x**2) / 40
    for method in ("vmap", "hooks"):
        exact = diagonal_curvature(model, Split(x, y), "exact", method=method)["0.weight"]
        empirical = diagonal_curvature(model, Split(x, y), "empirical", method=method)["0.weight"]
        assert torch.allclose(exact, ggn, rtol=1e-5, atol=1e-7)
        assert torch.allclose(empirical, emp, rtol=1e-5, atol=1e-7)


def test_least_squares_ggn_is_the_hessian():
    """Squared error (f - y)² of a linear model: the Hessian of the mean loss is (2/n) XᵀX."""
    class Squeeze(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(6, 1, bias=False)

        def forward(self, x):
            return self.lin(x).squeeze(-1)

    torch.manual_seed(4)
    model, x, y = Squeeze(), torch.randn(50, 6), torch.randn(50)
    h = diagonal_curvature(model, Split(x, y), "exact", "regression")["lin.weight"]
    assert torch.allclose(h[0], 2 * (x**2).mean(0), rtol=1e-5)
    for kind in ("sampled", "empirical"):
        gen = torch.Generator().manual_seed(2)
        fast = diagonal_curvature(model, Split(x, y), kind, "regression", samples=3, generator=gen, chunk_size=7)
        loop = diagonal_curvature_loop(model, Split(x, y), kind, "regression", samples=3,
                                       generator=torch.Generator().manual_seed(2))
        assert close(fast, loop)


def test_sampled_fisher_is_unbiased_for_the_ggn():
    model, data = conv_model(), conv_data(12)
    exact = diagonal_curvature(model, data, "exact")
    mc = diagonal_curvature(model, data, "sampled", samples=4000, generator=torch.Generator().manual_seed(0))
    for k in exact:
        assert torch.allclose(mc[k], exact[k], rtol=0.15, atol=0.02 * float(exact[k].max()))


def test_chunking_device_independent_labels_and_subsets():
    model, data = conv_model(), conv_data()
    names = ["0.weight", "5.weight"]
    a = diagonal_curvature(model, data, "sampled", names=names, generator=torch.Generator().manual_seed(1),
                           chunk_size=3)
    b = diagonal_curvature(model, data, "sampled", names=names, generator=torch.Generator().manual_seed(1),
                           chunk_size=29)
    assert close(a, b, 1e-5)
    t1 = sample_targets(model, data.x, "classification", 3, torch.Generator().manual_seed(1))
    t2 = sample_targets(model, data.x, "classification", 3, torch.Generator().manual_seed(1))
    assert t1.shape == (29, 3) and torch.equal(t1, t2)
    sub1 = diagonal_curvature(model, data, "empirical", names=names, max_examples=10,
                              generator=torch.Generator().manual_seed(7))
    sub2 = diagonal_curvature(model, data, "empirical", names=names, max_examples=10,
                              generator=torch.Generator().manual_seed(7))
    full = diagonal_curvature(model, data, "empirical", names=names)
    assert all(torch.equal(sub1[k], sub2[k]) for k in names) and not torch.equal(sub1["0.weight"], full["0.weight"])


def test_errors_name_the_problem():
    model, data = conv_model(), conv_data()
    with pytest.raises(ValueError, match="kind"):
        diagonal_curvature(model, data, "hessian")
    with pytest.raises(ValueError, match="samples"):
        diagonal_curvature(model, data, samples=0)
    with pytest.raises(ValueError, match="no parameter"):
        diagonal_curvature(model, data, names=["nope"])
    with pytest.raises(ValueError, match="hooks"):
        diagonal_curvature(model, data, method="hooks")  # BatchNorm parameters are not Linear/Conv2d


def test_shared_weights_fall_back_to_vmap():
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 3)

        def forward(self, x):
            return self.b(torch.tanh(self.a(torch.tanh(self.a(x)))))  # ``a`` runs twice

    torch.manual_seed(0)
    model, data = Shared().eval(), Split(torch.randn(20, 4), torch.randint(0, 3, (20,)))
    assert close(diagonal_curvature(model, data, "empirical", chunk_size=6), diagonal_curvature_loop(model, data, "empirical"))
    with pytest.raises(RuntimeError, match="more than once"):
        diagonal_curvature(model, data, "empirical", method="hooks")


def test_frozen_parameters_still_get_their_curvature():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).eval()
    data, names = Split(torch.randn(20, 4), torch.randint(0, 3, (20,))), ["0.weight", "2.weight"]
    reference = diagonal_curvature_loop(model, data, "exact", names=names)
    model[0].weight.requires_grad_(False)  # e.g. a CodebookModel freezes its coded tensors
    for method in ("vmap", "hooks"):
        assert close(diagonal_curvature(model, data, "exact", names=names, method=method), reference)
