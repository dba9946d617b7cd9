"""Few-shot data: datasets as tensors + labels, episode samplers, loaders."""

from fewshot.data.dataset import FewShotDataset
from fewshot.data.episode import Episode
from fewshot.data.loading import get_dataset
from fewshot.data.sampler import EpisodeSampler
from fewshot.data.sinusoid import Sinusoid
from fewshot.data.transforms import augment_episode, compose, random_affine, random_crop, random_flip

__all__ = [
    "Episode",
    "EpisodeSampler",
    "FewShotDataset",
    "Sinusoid",
    "augment_episode",
    "compose",
    "get_dataset",
    "random_affine",
    "random_crop",
    "random_flip",
]
