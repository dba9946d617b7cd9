"""Backbones and heads as plain ``nn.Module``s."""

from fewshot.nn.backbones import BACKBONES, MLP, Backbone, Conv4, CosineLinear, ResNet12, get_backbone

__all__ = ["BACKBONES", "MLP", "Backbone", "Conv4", "CosineLinear", "ResNet12", "get_backbone"]
