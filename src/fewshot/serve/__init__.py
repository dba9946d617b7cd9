"""HTTP service: load a checkpoint, adapt on each request's support set, predict its queries."""

from fewshot.serve.app import Limits, create_app, run_server

__all__ = ["Limits", "create_app", "run_server"]
