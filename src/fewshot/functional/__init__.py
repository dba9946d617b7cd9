"""The ``torch.func`` core: parameters as dicts, pure inner loops, the task axis."""

from fewshot.functional.batching import TaskBatcher, loop_tasks, resolve_mode, vmap_tasks
from fewshot.functional.inner_loop import inner_loop
from fewshot.functional.norm import DecomposedBatchNorm, batch_norm_batch_stats
from fewshot.functional.params import (
    bn_eval,
    buffers,
    call,
    detach,
    functional_buffers,
    parameters,
    running_stat_names,
    select,
    strip,
)

__all__ = [
    "DecomposedBatchNorm",
    "TaskBatcher",
    "batch_norm_batch_stats",
    "bn_eval",
    "buffers",
    "call",
    "detach",
    "functional_buffers",
    "inner_loop",
    "loop_tasks",
    "parameters",
    "resolve_mode",
    "running_stat_names",
    "select",
    "strip",
    "vmap_tasks",
]
