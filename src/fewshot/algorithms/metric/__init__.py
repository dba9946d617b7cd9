"""Metric-based meta-learners: compare query embeddings with the support set."""

from fewshot.algorithms.metric.matching import FullContextEmbedding, MatchingNet
from fewshot.algorithms.metric.protonet import ProtoNet
from fewshot.algorithms.metric.relation import Conv4Maps, RelationModule, RelationNet

__all__ = ["Conv4Maps", "FullContextEmbedding", "MatchingNet", "ProtoNet", "RelationModule", "RelationNet"]
