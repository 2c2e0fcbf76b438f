"""ResNet-9: shapes, parameter count, layer structure, the residual, predict, FLOPs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cifar_supercon.model import ResNet9, analytic_forward_flops, analytic_parameter_count


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def images(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("width", [4, 16, 64])
def test_output_shape(width):
    model = ResNet9(width).eval()
    with torch.no_grad():
        logits = model(images(2))
    assert logits.shape == (2, 10)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


def test_output_shape_in_training_mode_and_other_class_counts():
    model = ResNet9(8, num_classes=3)
    assert model(images(4)).shape == (4, 3)


@pytest.mark.parametrize("width", [1, 4, 16, 64])
def test_parameter_count(width):
    assert count_parameters(ResNet9(width)) == analytic_parameter_count(width)


def test_parameter_count_of_the_assignment_model():
    assert analytic_parameter_count(64) == 6_573_120
    assert count_parameters(ResNet9()) == 6_573_120


def test_convolutions_have_no_bias():
    model = ResNet9(8)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8
    assert all(conv.bias is None for conv in convs)


def assert_conv_unit(unit: nn.Module, c_in: int, c_out: int, pool: bool) -> None:
    """conv 3x3 (padding 1, no bias) [-> MaxPool2d(2)] -> BatchNorm2d -> ReLU."""
    assert isinstance(unit, nn.Sequential)
    kinds = [type(m) for m in unit]
    pooling = [nn.MaxPool2d] if pool else []
    assert kinds == [nn.Conv2d, *pooling, nn.BatchNorm2d, nn.ReLU]
    conv, bn = unit[0], unit[-2]
    assert (conv.in_channels, conv.out_channels) == (c_in, c_out)
    assert conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.stride == (1, 1)
    assert conv.bias is None
    assert bn.num_features == c_out
    if pool:
        assert unit[1].kernel_size == 2


def assert_residual(block: nn.Module, channels: int) -> None:
    inner = block.block
    assert len(inner) == 2
    for unit in inner:
        assert_conv_unit(unit, channels, channels, pool=False)


def test_layer_structure():
    w = 8
    model = ResNet9(w)
    children = dict(model.named_children())
    assert list(children) == ["prep", "layer1", "layer2", "layer3", "pool", "fc"]
    assert_conv_unit(model.prep, 3, w, pool=False)
    assert len(model.layer1) == 2
    assert_conv_unit(model.layer1[0], w, 2 * w, pool=True)
    assert_residual(model.layer1[1], 2 * w)
    assert_conv_unit(model.layer2, 2 * w, 4 * w, pool=True)
    assert len(model.layer3) == 2
    assert_conv_unit(model.layer3[0], 4 * w, 8 * w, pool=True)
    assert_residual(model.layer3[1], 8 * w)
    assert isinstance(model.pool, nn.MaxPool2d) and model.pool.kernel_size == 4
    assert isinstance(model.fc, nn.Linear)
    assert (model.fc.in_features, model.fc.out_features) == (8 * w, 10)
    assert model.fc.bias is None  # Page's head: no bias (the 6,573,120 above counts none)


def test_feature_map_shapes():
    w = 4
    model = ResNet9(w).eval()
    shapes = {}
    for name in ("prep", "layer1", "layer2", "layer3", "pool"):
        module = getattr(model, name)
        module.register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape))
        )
    with torch.no_grad():
        model(images(2))
    assert shapes == {
        "prep": (2, w, 32, 32),
        "layer1": (2, 2 * w, 16, 16),
        "layer2": (2, 4 * w, 8, 8),
        "layer3": (2, 8 * w, 4, 4),
        "pool": (2, 8 * w, 1, 1),
    }


def test_forward_is_the_composition_of_the_layers_times_logit_scale():
    model = ResNet9(4, logit_scale=0.5).eval()
    x = images(3)
    with torch.no_grad():
        features = model.layer3(model.layer2(model.layer1(model.prep(x))))
        manual = model.fc(model.pool(features).flatten(1)) * 0.5
        torch.testing.assert_close(model(x), manual, rtol=0, atol=0)


def randomise_batch_norms(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)


@pytest.mark.parametrize("layer", ["layer1", "layer3"])
def test_residual_adds_the_block_to_its_input(layer):
    model = ResNet9(4).eval()
    with torch.no_grad():
        randomise_batch_norms(model)
        stage = getattr(model, layer)
        x = model.prep(images(2))
        if layer == "layer3":
            x = model.layer2(model.layer1(x))
        head = stage[0](x)
        branch = stage[1].block(head)
        assert branch.abs().sum() > 0
        torch.testing.assert_close(stage(x), head + branch, rtol=0, atol=0)
        assert not torch.equal(stage(x), head)

        last_bn = stage[1].block[1][1]
        assert isinstance(last_bn, nn.BatchNorm2d)
        last_bn.weight.zero_()
        last_bn.bias.zero_()
        torch.testing.assert_close(stage(x), head, rtol=0, atol=0)


def test_logit_scale_multiplies_the_logits():
    x = images(2)
    torch.manual_seed(1)
    plain = ResNet9(4, logit_scale=1.0).eval()
    torch.manual_seed(1)
    scaled = ResNet9(4).eval()  # Page's 0.125
    assert scaled.logit_scale == 0.125
    with torch.no_grad():
        torch.testing.assert_close(scaled(x), plain(x) * 0.125)


def test_predict_is_softmax_of_forward():
    model = ResNet9(8).eval()
    with torch.no_grad():
        randomise_batch_norms(model)
    x = images(5)
    probs = model.predict(x)
    assert probs.shape == (5, 10)
    assert not probs.requires_grad
    assert (probs >= 0).all() and (probs <= 1).all()
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(5))
    with torch.no_grad():
        logits = model(x)
    torch.testing.assert_close(probs, torch.softmax(logits, dim=1))
    assert torch.equal(probs.argmax(1), logits.argmax(1))


def hooked_flops(model: nn.Module) -> int:
    """FLOPs for one image, counted from what each Conv2d / Linear actually produced."""
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        per_image = output.numel() // output.shape[0]
        kh, kw = module.kernel_size
        total += 2 * per_image * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += 2 * module.in_features * module.out_features

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(conv_hook)
        elif isinstance(m, nn.Linear):
            m.register_forward_hook(linear_hook)
    with torch.no_grad():
        model(images(1))
    return total


@pytest.mark.parametrize("width", [4, 16, 64])
def test_analytic_flops_match_a_hooked_count(width):
    assert analytic_forward_flops(width) == hooked_flops(ResNet9(width).eval())


def test_flops_of_the_assignment_model():
    flops = analytic_forward_flops(64)
    assert flops == pytest.approx(0.76e9, rel=0.01)
    assert flops == hooked_flops(ResNet9(64).eval())
