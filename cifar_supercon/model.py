"""David Page's ResNet-9 ("How to train your ResNet", DAWNBench 2018), width-scalable.

prep -> layer1 (+ residual) -> layer2 -> layer3 (+ residual) -> max-pool 4 -> linear -> x scale.
Convolutions carry no bias because BatchNorm follows each of them.
"""

from __future__ import annotations

import torch
from torch import nn

NUM_CLASSES = 10
IMAGE_SIZE = 32


def conv_bn_relu(c_in: int, c_out: int, pool: bool = False) -> nn.Sequential:
    """3x3 convolution, then (optionally) 2x2 max-pool, BatchNorm and ReLU."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))  # pooling before BN: 4x less normalisation work
    layers += [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """x + (conv-bn-relu, conv-bn-relu)(x)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            conv_bn_relu(channels, channels), conv_bn_relu(channels, channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResNet9(nn.Module):
    def __init__(
        self, width: int = 64, num_classes: int = NUM_CLASSES, logit_scale: float = 0.125
    ) -> None:
        super().__init__()
        self.width = width
        w = width
        self.prep = conv_bn_relu(3, w)
        self.layer1 = nn.Sequential(conv_bn_relu(w, 2 * w, pool=True), Residual(2 * w))
        self.layer2 = conv_bn_relu(2 * w, 4 * w, pool=True)
        self.layer3 = nn.Sequential(conv_bn_relu(4 * w, 8 * w, pool=True), Residual(8 * w))
        self.pool = nn.MaxPool2d(4)
        self.fc = nn.Linear(8 * w, num_classes, bias=False)
        # Page scales the logits by 1/8: with a plain linear head the initial logits are too
        # large for the high learning rates of the cycle.
        self.logit_scale = logit_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.prep(x))))
        return self.fc(torch.flatten(self.pool(x), 1)) * self.logit_scale

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities (the softmax of the logits)."""
        return torch.softmax(self(x), dim=1)


def probe(width: int, num_classes: int = NUM_CLASSES) -> ResNet9:
    """A model to measure (shapes, saved activations), not to train: its initialisation does not
    draw from the global generator, so a run's weights never depend on what was measured before."""
    with torch.random.fork_rng(devices=[]):
        return ResNet9(width, num_classes)


def analytic_parameter_count(width: int, num_classes: int = NUM_CLASSES) -> int:
    """Weights of every conv (3x3, no bias), BN (scale + shift) and the bias-free linear head."""
    w = width

    def conv_bn(c_in: int, c_out: int) -> int:
        return 9 * c_in * c_out + 2 * c_out

    return (
        conv_bn(3, w)
        + conv_bn(w, 2 * w)
        + 2 * conv_bn(2 * w, 2 * w)
        + conv_bn(2 * w, 4 * w)
        + conv_bn(4 * w, 8 * w)
        + 2 * conv_bn(8 * w, 8 * w)
        + 8 * w * num_classes
    )


def analytic_forward_flops(width: int, num_classes: int = NUM_CLASSES) -> int:
    """FLOPs (2 per multiply-add) of the convolutions and the head for one 32x32 image."""
    w = width

    def conv(c_in: int, c_out: int, side: int) -> int:
        return 2 * 9 * c_in * c_out * side * side

    return (
        conv(3, w, 32)
        + conv(w, 2 * w, 32)  # computed at 32x32, pooled afterwards
        + 2 * conv(2 * w, 2 * w, 16)
        + conv(2 * w, 4 * w, 16)
        + conv(4 * w, 8 * w, 8)
        + 2 * conv(8 * w, 8 * w, 4)
        + 2 * 8 * w * num_classes
    )
