import pytest
import torch

from fewshot.nn import MLP, Conv4, CosineLinear, ResNet12, get_backbone


@pytest.mark.parametrize(
    ("size", "downsample", "features"),
    [(28, "maxpool", 64), (84, "maxpool", 1600), (28, "stride", 64 * 2 * 2), (84, "stride", 64 * 6 * 6)],
)
def test_conv4_feature_sizes(size, downsample, features):
    model = Conv4(in_channels=1, image_size=size, downsample=downsample)
    assert model.out_features == features
    assert model(torch.randn(2, 1, size, size)).shape == (2, features)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 4
    pools = sum(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    strides = [m.stride for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert (pools, strides) == ((4, [(1, 1)] * 4) if downsample == "maxpool" else (0, [(2, 2)] * 4))


def test_strided_conv4_block_matches_functional_conv():
    torch.manual_seed(0)
    model = Conv4(in_channels=1, hidden=3, image_size=28, downsample="stride").eval()
    conv, bn = model.features[0][0], model.features[0][1]
    x = torch.randn(2, 1, 28, 28)
    ref = torch.nn.functional.conv2d(x, conv.weight, conv.bias, stride=2, padding=1)  # [2, 3, 14, 14]
    ref = torch.relu((ref - bn.running_mean[:, None, None]) / (bn.running_var[:, None, None] + bn.eps).sqrt())
    assert torch.allclose(model.features[0](x), ref, atol=1e-6)
    with pytest.raises(ValueError, match="unknown downsample 'avg'; valid: maxpool, stride"):
        Conv4(downsample="avg")


def test_conv4_mean_pool_averages_the_last_map_over_space():
    torch.manual_seed(0)
    flat = Conv4(in_channels=1, image_size=28, downsample="stride").eval()
    mean = Conv4(in_channels=1, image_size=28, downsample="stride", pool="mean").eval()
    mean.load_state_dict(flat.state_dict())  # the same convs: only the pooling differs
    x = torch.randn(3, 1, 28, 28)
    maps = flat.features(x).view(3, 64, 2, 2)  # flatten keeps channel-major order
    assert mean.out_features == 64
    assert torch.allclose(mean(x), maps.mean((2, 3)), atol=1e-6)
    assert Conv4(num_classes=5, downsample="stride", pool="mean").head.in_features == 64
    with pytest.raises(ValueError, match="unknown pool 'max'; valid: flatten, mean"):
        Conv4(pool="max")


def test_heads_and_registry():
    assert Conv4(num_classes=5)(torch.randn(3, 1, 28, 28)).shape == (3, 5)
    assert ResNet12(widths=(8, 8, 8, 8))(torch.randn(2, 3, 32, 32)).shape == (2, 8)
    assert MLP(1, num_classes=1)(torch.randn(7, 1)).shape == (7, 1)
    assert isinstance(get_backbone("mlp", in_features=3), MLP)
    with pytest.raises(ValueError, match="unknown backbone .vgg.; valid names: conv4, darts, mlp, resnet12"):
        get_backbone("vgg")


def test_cosine_linear_closed_form():
    head = CosineLinear(4, 3, scale=5.0)
    x = torch.randn(6, 4)
    expected = 5.0 * torch.stack([torch.nn.functional.cosine_similarity(xi[None], head.weight) for xi in x])
    assert torch.allclose(head(x), expected, atol=1e-6)
