"""Built-in model families: MLPs, LeNet-300-100, LeNet-5, the small ConvNet of seed 000 (Table 5),
a linear model, and any timm model by name (``timm:resnet18``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

import torch
from torch import nn

from bench.api import Ge, ModelFamily, hookimpl


def _flat_dim(input_shape: tuple[int, ...]) -> int:
    return int(math.prod(input_shape))


def _mlp(in_dim: int, widths: tuple[int, ...], out_dim: int, activation: str) -> nn.Sequential:
    act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
    layers: list[nn.Module] = [nn.Flatten()]
    prev = in_dim
    for w in widths:
        layers += [nn.Linear(prev, w), act()]
        prev = w
    layers.append(nn.Linear(prev, out_dim))
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class MLPParams:
    widths: Annotated[tuple[int, ...], Ge(1)] = (256, 256)  # hidden layer widths, in order
    activation: Literal["relu", "tanh"] = "relu"  # between the hidden layers


class MLP(ModelFamily):
    name: ClassVar[str] = "mlp"
    description: ClassVar[str] = "fully connected network with configurable hidden widths"
    Params = MLPParams

    def build(self, input_shape, num_classes):
        return _mlp(_flat_dim(input_shape), self.params.widths, num_classes, self.params.activation)


class LeNet300100(ModelFamily):
    name: ClassVar[str] = "lenet-300-100"
    description: ClassVar[str] = "LeNet-300-100: MLP with hidden widths 300 and 100"

    def build(self, input_shape, num_classes):
        return _mlp(_flat_dim(input_shape), (300, 100), num_classes, "relu")


class LeNet5Net(nn.Module):
    def __init__(self, in_channels: int, spatial: tuple[int, int], num_classes: int, fc: int = 500) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(20, 50, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        h, w = spatial
        h, w = ((h - 4) // 2 - 4) // 2, ((w - 4) // 2 - 4) // 2
        if h < 1 or w < 1:
            raise ValueError(f"lenet5 needs inputs of at least 16x16, got {spatial[0]}x{spatial[1]}")
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(50 * h * w, fc), nn.ReLU(), nn.Linear(fc, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@dataclass(frozen=True)
class LeNet5Params:
    fc: Annotated[int, Ge(1)] = 500  # width of the hidden fully connected layer (most of the weights)

    RETIRED: ClassVar[dict[str, str]] = {
        "flip": "averaging the logits of an image and its mirror fitted no better in a random subspace (docs/id.md)"}


class LeNet5(ModelFamily):
    name: ClassVar[str] = "lenet5"
    description: ClassVar[str] = "LeNet-5 (Caffe variant, conv 20-50, fc 500 or `fc`), as in the seeds"
    Params = LeNet5Params

    def build(self, input_shape, num_classes):
        if len(input_shape) != 3:
            raise ValueError(f"lenet5 needs image inputs (C, H, W), got shape {input_shape}")
        return LeNet5Net(input_shape[0], input_shape[1:], num_classes, self.params.fc)


@dataclass(frozen=True)
class ConvNetParams:
    k: Annotated[int, Ge(1)] = 16  # width: channels of the first block (2k in the later ones)

    RETIRED: ClassVar[dict[str, str]] = {
        "norm": "the GroupNorm ConvNet lost far more to quantization than LeNet-5 (docs/id.md)"}


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]


class ConvNet(ModelFamily):
    name: ClassVar[str] = "convnet"
    description: ClassVar[str] = "the small ConvNet of seed 000 Table 5 (9 conv layers with BatchNorm, width k)"
    Params = ConvNetParams

    def build(self, input_shape, num_classes):
        if len(input_shape) != 3:
            raise ValueError(f"convnet needs image inputs (C, H, W), got shape {input_shape}")
        k, c = self.params.k, input_shape[0]
        layers = _conv_bn_relu(c, k) + _conv_bn_relu(k, k) + _conv_bn_relu(k, 2 * k) + [nn.MaxPool2d(2)]
        layers += sum((_conv_bn_relu(2 * k, 2 * k) for _ in range(3)), []) + [nn.MaxPool2d(2)]
        layers += sum((_conv_bn_relu(2 * k, 2 * k) for _ in range(3)), [])
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * k, num_classes)]
        return nn.Sequential(*layers)


class SqueezeOutput(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x).squeeze(-1)


@dataclass(frozen=True)
class LinearParams:
    bias: bool = False  # a bias term


class Linear(ModelFamily):
    name: ClassVar[str] = "linear"
    description: ClassVar[str] = "linear model: regression (one output) or multinomial logistic regression"
    Params = LinearParams

    def build(self, input_shape, num_classes):
        layer = nn.Linear(_flat_dim(input_shape), max(num_classes, 1), bias=self.params.bias)
        if num_classes == 0:
            return SqueezeOutput(nn.Sequential(nn.Flatten(), layer))
        return nn.Sequential(nn.Flatten(), layer)


@dataclass(frozen=True)
class TimmParams:
    arch: str = "resnet18"  # the timm model name (also given as model = "timm:NAME")


class Timm(ModelFamily):
    name: ClassVar[str] = "timm"
    description: ClassVar[str] = "any timm model by name, e.g. 'timm:resnet18' (random initialization)"
    Params = TimmParams

    def build(self, input_shape, num_classes):
        import timm

        if self.params.arch not in timm.list_models():
            raise ValueError(f"timm has no model '{self.params.arch}'")
        return timm.create_model(
            self.params.arch, pretrained=False, num_classes=num_classes, in_chans=input_shape[0]
        )


@hookimpl
def bench_register_models(register) -> None:
    for cls in (MLP, LeNet300100, LeNet5, ConvNet, Linear, Timm):
        register(cls)
