"""Backbones and heads as plain ``nn.Module``s."""

from fewshot.nn.backbones import MLP, Backbone, Conv4, CosineLinear, ResNet12, get_backbone
from fewshot.nn.feature_maps import Conv4Maps

__all__ = ["MLP", "Backbone", "Conv4", "Conv4Maps", "CosineLinear", "ResNet12", "get_backbone"]
