"""Built-in tasks: a dataset, a model and a training recipe each. ``bench.toml`` can override any
field of these or define new tasks under ``[tasks.NAME]``."""

from __future__ import annotations

from bench.api import TaskSpec, hookimpl

ADAM_10 = {"optimizer": "adam", "lr": 1e-3, "epochs": 10, "batch_size": 128}

TASKS = [
    TaskSpec(
        name="digits-mlp",
        dataset="digits",
        model="mlp",
        model_params={"widths": [32]},
        recipe={"optimizer": "adam", "lr": 3e-3, "epochs": 40, "batch_size": 64, "weight_decay": 1e-4},
        description="scikit-learn digits, MLP 64-32-10 (the embedded default, seconds on a CPU)",
    ),
    TaskSpec(
        name="fashion-mnist-lenet5",
        dataset="fashion-mnist",
        model="lenet5",
        recipe=ADAM_10,
        description="Fashion-MNIST, LeNet-5 (20-50-500)",
    ),
    TaskSpec(
        name="fashion-mnist-lenet300",
        dataset="fashion-mnist",
        model="lenet-300-100",
        recipe=ADAM_10,
        description="Fashion-MNIST, LeNet-300-100 (784-300-100-10)",
    ),
    TaskSpec(
        name="mnist-lenet300",
        dataset="mnist",
        model="lenet-300-100",
        recipe=ADAM_10,
        description="MNIST, LeNet-300-100 (torchvision; needs --download once)",
    ),
    TaskSpec(
        name="fashion-mnist-mlp",
        dataset="fashion-mnist",
        dataset_params={"train_fraction": 0.1},
        model="mlp",
        model_params={"widths": [256, 256]},
        recipe={**ADAM_10, "epochs": 30},
        description="Fashion-MNIST (10 % of the training set), MLP 784-256-256-10 as seed 001 Sec. 7",
    ),
    TaskSpec(
        name="fashion-mnist2-mlp",
        dataset="fashion-mnist",
        dataset_params={"merge_classes": 2},
        model="mlp",
        model_params={"widths": [300, 300]},
        recipe={**ADAM_10, "epochs": 40, "schedule": "cosine"},
        description="Fashion-MNIST-2 (classes 0-4 against 5-9), MLP 784-300-300-2 trained to ~100 % "
                    "training accuracy, as seed 004 Section 6",
    ),
    TaskSpec(
        name="fashion-mnist-convnet",
        dataset="fashion-mnist",
        model="convnet",
        model_params={"k": 16},
        recipe={**ADAM_10, "epochs": 8},
        description="Fashion-MNIST, the ConvNet of seed 000 Table 5 (k = 16, BatchNorm), 8 epochs",
    ),
    TaskSpec(
        name="mnist-lenet5",
        dataset="mnist",
        model="lenet5",
        recipe=ADAM_10,
        description="MNIST, LeNet-5 (torchvision; needs --download once)",
    ),
    TaskSpec(
        name="cifar10-convnet",
        dataset="cifar10",
        model="convnet",
        model_params={"k": 16},
        recipe={**ADAM_10, "epochs": 30},
        description="CIFAR-10, the ConvNet of seed 000 Table 5 with k = 16 (torchvision)",
    ),
    TaskSpec(
        name="svhn-convnet",
        dataset="svhn",
        model="convnet",
        model_params={"k": 16},
        recipe={**ADAM_10, "epochs": 20},
        description="SVHN, the ConvNet of seed 000 Table 5 with k = 16 (torchvision)",
    ),
    TaskSpec(
        name="linear-regression",
        dataset="linear-regression",
        model="linear",
        recipe={"optimizer": "adam", "lr": 0.05, "epochs": 300, "batch_size": 80, "schedule": "cosine"},
        description="seed 001 Section 5 testbed: d = 50, n = 80, least squares",
    ),
]


@hookimpl
def bench_register_tasks(register) -> None:
    for spec in TASKS:
        register(spec)
