import pytest
import torch

from fewshot.nn import MLP, Conv4, CosineLinear, ResNet12, get_backbone


@pytest.mark.parametrize(("size", "features"), [(28, 64), (84, 1600)])
def test_conv4_feature_sizes(size, features):
    model = Conv4(in_channels=1, image_size=size)
    assert model.out_features == features
    assert model(torch.randn(2, 1, size, size)).shape == (2, features)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 4


def test_heads_and_registry():
    assert Conv4(num_classes=5)(torch.randn(3, 1, 28, 28)).shape == (3, 5)
    assert ResNet12(widths=(8, 8, 8, 8))(torch.randn(2, 3, 32, 32)).shape == (2, 8)
    assert MLP(1, num_classes=1)(torch.randn(7, 1)).shape == (7, 1)
    assert isinstance(get_backbone("mlp", in_features=3), MLP)
    with pytest.raises(ValueError, match="valid names: conv4, mlp, resnet12"):
        get_backbone("vgg")


def test_cosine_linear_closed_form():
    head = CosineLinear(4, 3, scale=5.0)
    x = torch.randn(6, 4)
    expected = 5.0 * torch.stack([torch.nn.functional.cosine_similarity(xi[None], head.weight) for xi in x])
    assert torch.allclose(head(x), expected, atol=1e-6)
