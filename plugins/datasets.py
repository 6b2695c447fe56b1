"""Built-in datasets: scikit-learn digits (the embedded default), Fashion-MNIST from IDX files,
torchvision's MNIST / CIFAR-10 / SVHN, and the synthetic linear-regression generator of seed 001.

Every dataset has one fixed split; ``train_fraction`` takes a deterministic, class-stratified subset of
the training split (the same one every time), e.g. the 10 % of seed 001 Section 7.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar

import numpy as np
import torch

from bench.api import Between, DataBundle, Dataset, DatasetUnavailable, Ge, Gt, Le, Split, hookimpl

DEFAULT_DATA_ROOT = Path(os.environ.get("BENCH_DATA_DIR", Path.home() / ".cache" / "compression-bench" / "data"))
FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class ImageParams:
    train_fraction: Annotated[float, Gt(0), Le(1)] = 1.0
    # a deterministic, stratified share of the training set (1: all of it)
    merge_classes: Annotated[int, Ge(0)] = 0  # k > 0: classes merged, in order, into k contiguous groups (2: "MNIST-2")
    prior_fraction: Annotated[float, Between(0, 1)] = 0.0  # p > 0: a stratified p of the training set is S_prior (a data-dependent prior)

    def validate(self) -> None:  # what a range cannot say
        if self.merge_classes == 1:
            raise ValueError("parameter 'merge_classes' must be 0 (keep the classes) or >= 2")


def image_bundle(train: Split, test: Split, input_shape: tuple[int, ...], classes: int,
                 params: ImageParams) -> DataBundle:
    """The bundle with ``train_fraction`` of the training set (stratified on the original classes);
    with ``prior_fraction = p``, a stratified ``p`` of it marked as ``S_prior``; and, with
    ``merge_classes = k``, class ``c`` relabelled ``⌊c·k / classes⌋`` in both splits (deterministic;
    seed 004's two-class versions: the first half of the classes against the rest)."""
    train = stratified_subset(train, params.train_fraction)
    prior = None
    if params.prior_fraction > 0:  # stratified on the original classes, disjoint from S_bound by construction
        prior = torch.from_numpy(stratified_indices(train.y, params.prior_fraction, PRIOR_SPLIT_SEED))
    k = params.merge_classes
    if k:
        if k > classes:
            raise ValueError(f"parameter 'merge_classes' = {k} exceeds the {classes} classes")
        train, test = (Split(split.x, split.y * k // classes) for split in (train, test))
        classes = k
    return DataBundle(train, test, input_shape, classes, prior_indices=prior)


def stratified_indices(y: torch.Tensor, fraction: float, seed: int = 0) -> np.ndarray:
    """Sorted indices of the first ``fraction`` of each class under a fixed permutation: deterministic
    and balanced."""
    rng = np.random.default_rng(seed)
    y = y.numpy()
    keep = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        keep.append(idx[: max(1, int(round(fraction * len(idx))))])
    return np.sort(np.concatenate(keep))


def stratified_subset(split: Split, fraction: float, seed: int = 0) -> Split:
    """The first ``fraction`` of each class under a fixed permutation: deterministic and balanced."""
    if fraction >= 1.0:
        return split
    order = stratified_indices(split.y, fraction, seed)
    return Split(split.x[order], split.y[order])


PRIOR_SPLIT_SEED = 1  # S_prior's permutation: fixed, and independent of train_fraction's


def _images(x: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 images (N, C, H, W) -> normalized float32."""
    t = torch.from_numpy(np.array(x, copy=True)).float().div_(255.0)
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return (t - m) / s


def _labels(y) -> torch.Tensor:
    return torch.as_tensor(np.asarray(y, dtype=np.int64))


class Digits(Dataset):
    name: ClassVar[str] = "digits"
    description: ClassVar[str] = "scikit-learn 8x8 digits, 1347 train / 450 test (always available)"
    Params = ImageParams

    def load(self, data_dir: Path | None, download: bool) -> DataBundle:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        x = bunch.images.astype(np.float32)[:, None] / 16.0
        y = bunch.target.astype(np.int64)
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
        train = Split(torch.from_numpy(x_tr), torch.from_numpy(y_tr))
        test = Split(torch.from_numpy(x_te), torch.from_numpy(y_te))
        return image_bundle(train, test, (1, 8, 8), 10, self.params)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped), the format of (Fashion-)MNIST."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{path}: expected {np.prod(shape)} values, found {arr.size}")
    return arr.reshape(shape)


def _find_idx(root: Path, stem: str) -> Path | None:
    for candidate in (root / f"{stem}.gz", root / stem, root / "raw" / f"{stem}.gz", root / "raw" / stem):
        if candidate.exists():
            return candidate
    return None


class FashionMNIST(Dataset):
    name: ClassVar[str] = "fashion-mnist"
    description: ClassVar[str] = "Fashion-MNIST 60000/10000 from IDX files (Debian dataset-fashion-mnist)"
    Params = ImageParams
    MEAN, STD = (0.2860,), (0.3530,)
    STEMS = {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }

    def _roots(self, data_dir: Path | None) -> list[Path]:
        roots = [data_dir, data_dir / "fashion-mnist" if data_dir else None, FASHION_MNIST_DEBIAN,
                 DEFAULT_DATA_ROOT / "FashionMNIST", DEFAULT_DATA_ROOT / "fashion-mnist"]
        return [r for r in roots if r is not None]

    def load(self, data_dir: Path | None, download: bool) -> DataBundle:
        for root in self._roots(data_dir):
            paths = {k: [_find_idx(root, s) for s in stems] for k, stems in self.STEMS.items()}
            if all(p is not None for ps in paths.values() for p in ps):
                splits = {}
                for key, (img, lab) in paths.items():
                    x = read_idx(img)[:, None]
                    splits[key] = Split(_images(x, self.MEAN, self.STD), _labels(read_idx(lab)))
                return image_bundle(splits["train"], splits["test"], (1, 28, 28), 10, self.params)
        if download:
            import torchvision

            root = data_dir or DEFAULT_DATA_ROOT
            try:
                torchvision.datasets.FashionMNIST(str(root), train=True, download=True)
                torchvision.datasets.FashionMNIST(str(root), train=False, download=True)
            except Exception as exc:
                raise DatasetUnavailable(f"fashion-mnist: download failed ({exc})") from exc
            return self.load(Path(root) / "FashionMNIST", download=False)
        searched = ", ".join(str(r) for r in self._roots(data_dir))
        raise DatasetUnavailable(
            "fashion-mnist: IDX files not found (searched " + searched + "). Install them with "
            "`apt-get install dataset-fashion-mnist`, pass --data-dir DIR, or run with --download."
        )


class _Torchvision(Dataset):
    """A torchvision dataset, downloaded only when asked (``--download``)."""

    Params = ImageParams
    tv_class: ClassVar[str] = ""
    MEAN: ClassVar[tuple[float, ...]] = ()
    STD: ClassVar[tuple[float, ...]] = ()
    input_shape: ClassVar[tuple[int, ...]] = ()

    def _open(self, root: str, train: bool, download: bool):
        import torchvision

        cls = getattr(torchvision.datasets, self.tv_class)
        if self.tv_class == "SVHN":
            return cls(root, split="train" if train else "test", download=download)
        return cls(root, train=train, download=download)

    @staticmethod
    def _arrays(ds) -> tuple[np.ndarray, np.ndarray]:
        data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
        if data.ndim == 3:  # (N, H, W) grayscale
            data = data[:, None]
        elif data.shape[-1] == 3:  # (N, H, W, C) -> (N, C, H, W)
            data = data.transpose(0, 3, 1, 2)
        labels = getattr(ds, "targets", None)
        if labels is None:
            labels = ds.labels
        labels = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        return data, labels

    def load(self, data_dir: Path | None, download: bool) -> DataBundle:
        root = str(data_dir or DEFAULT_DATA_ROOT)
        splits = {}
        for key, train in (("train", True), ("test", False)):
            try:
                ds = self._open(root, train, download)
            except RuntimeError as exc:
                how = "run with --download (needs network)" if not download else "check the network"
                raise DatasetUnavailable(
                    f"{self.name}: files not found under {root} ({exc}); {how}, or place the "
                    f"torchvision files there and pass --data-dir."
                ) from exc
            except Exception as exc:
                raise DatasetUnavailable(f"{self.name}: download failed ({exc})") from exc
            x, y = self._arrays(ds)
            splits[key] = Split(_images(x, self.MEAN, self.STD), _labels(y))
        return image_bundle(splits["train"], splits["test"], self.input_shape, 10, self.params)


class MNIST(_Torchvision):
    name: ClassVar[str] = "mnist"
    description: ClassVar[str] = "MNIST 60000/10000 through torchvision"
    tv_class, MEAN, STD, input_shape = "MNIST", (0.1307,), (0.3081,), (1, 28, 28)


class CIFAR10(_Torchvision):
    name: ClassVar[str] = "cifar10"
    description: ClassVar[str] = "CIFAR-10 50000/10000 through torchvision"
    tv_class, input_shape = "CIFAR10", (3, 32, 32)
    MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class SVHN(_Torchvision):
    name: ClassVar[str] = "svhn"
    description: ClassVar[str] = "SVHN 73257/26032 through torchvision"
    tv_class, input_shape = "SVHN", (3, 32, 32)
    MEAN, STD = (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)


@dataclass(frozen=True)
class LinearRegressionParams:
    d: Annotated[int, Ge(1)] = 50  # dimension of x and of w*
    n: Annotated[int, Ge(1)] = 80  # training examples
    n_test: Annotated[int, Ge(1)] = 10000  # test examples
    noise: Annotated[float, Ge(0)] = 1.0  # sigma' (standard deviation of the label noise)
    w_values: tuple[float, ...] = (1.0, -1.0)  # w* takes these values, in equal shares
    data_seed: int = 0  # the seed of the data (x, w*, noise), apart from the run's

    def validate(self) -> None:  # what a range cannot say
        if not self.w_values:
            raise ValueError("parameter 'w_values' must not be empty")


def linear_regression_w_star(d: int, w_values: tuple[float, ...]) -> np.ndarray:
    """w* of seed 001 Section 5: the values of ``w_values`` in equal consecutive shares."""
    return np.asarray(w_values, dtype=np.float64)[np.arange(d) * len(w_values) // d]


def linear_regression_sample(p: LinearRegressionParams, n: int, rng: np.random.Generator):
    """Draw ``n`` examples of Y = X^T w* + eps, X ~ N(0, I_d), eps ~ N(0, noise^2)."""
    w = linear_regression_w_star(p.d, p.w_values)
    x = rng.standard_normal((n, p.d))
    y = x @ w + p.noise * rng.standard_normal(n)
    return x, y


class LinearRegression(Dataset):
    name: ClassVar[str] = "linear-regression"
    description: ClassVar[str] = "synthetic Y = X^T w* + eps, X ~ N(0, I_d) (seed 001 Section 5)"
    Params = LinearRegressionParams

    def load(self, data_dir: Path | None, download: bool) -> DataBundle:
        p = self.params
        rng = np.random.default_rng(p.data_seed)
        x_tr, y_tr = linear_regression_sample(p, p.n, rng)
        x_te, y_te = linear_regression_sample(p, p.n_test, rng)
        t = lambda a: torch.from_numpy(a.astype(np.float32))  # noqa: E731
        return DataBundle(Split(t(x_tr), t(y_tr)), Split(t(x_te), t(y_te)), (p.d,), 0, "regression")


@hookimpl
def bench_register_datasets(register) -> None:
    for cls in (Digits, FashionMNIST, MNIST, CIFAR10, SVHN, LinearRegression):
        register(cls)
