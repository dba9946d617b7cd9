"""Training options that change how fast a step runs: bfloat16 autocast (``amp``, which rounds
activations to bfloat16) and the compiled per-task function of gradient-based learners (``compile``,
the same values).

Both are decided once per run from the config, the device and the algorithm; both default to auto,
on where they were measured to pay (and, for ``amp``, to leave accuracy unchanged). The figures are
in docs/speed.md (``benchmarks/protonet_speed.py``, ``maml_speed.py``, ``amp_speed.py``).
"""

from __future__ import annotations

import logging
import shutil

import torch

log = logging.getLogger(__name__)

COMPILE_MIN_STEPS = 1000
"""``compile=None`` (auto) compiles only runs at least this long: the first step pays the
compilation (tens of seconds on a 2-core CPU, docs/speed.md), which a faster step wins back
over a long run but not over a short one (tests, smoke runs)."""


def bf16_supported(device: torch.device) -> bool:
    """Whether bfloat16 autocast runs natively on ``device`` (CUDA with bf16, or a CPU whose
    oneDNN has bf16 kernels: AVX-512 BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return bool(torch.backends.mkldnn.is_available() and check is not None and check())
    return False


def amx_supported() -> bool:
    """Whether this CPU has AMX tiles, on which oneDNN's bfloat16 convolutions were measured to pay."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(check is not None and check())


def autocast_enabled(setting: bool | None, algorithm: torch.nn.Module, device: torch.device) -> bool:
    """Whether to train ``algorithm`` under bfloat16 autocast on ``device``.

    ``setting`` True asks for it where the device supports bfloat16 (float32, with a logged note,
    where it does not); False keeps float32; ``None`` (auto) turns it on where it was measured to
    pay and to leave accuracy unchanged: learners whose ``amp_pays()`` says so, on a CPU with AMX.
    """
    if setting is None:
        pays = getattr(algorithm, "amp_pays", lambda: False)()
        auto = bool(pays and device.type == "cpu" and amx_supported() and bf16_supported(device))
        if auto:
            name = type(algorithm).__name__
            log.info("amp: bfloat16 autocast (auto on this AMX CPU for %s; amp=false for float32)", name)
        return auto
    if setting and not bf16_supported(device):
        log.warning("amp: no native bfloat16 on %s; training in float32", device)
        return False
    return setting


def compiler_available() -> bool:
    """Whether ``torch.compile`` can build CPU kernels here (Inductor needs a C++ compiler)."""
    return any(shutil.which(name) for name in ("g++", "c++", "clang++"))


def compile_tasks(setting: bool | None, algorithm: torch.nn.Module, device: torch.device, steps: int) -> bool:
    """Whether to compile ``algorithm``'s per-task function for a run of ``steps`` steps.

    ``setting`` True / False decides; ``None`` (auto) compiles where it was measured to pay:
    algorithms whose ``compile_pays()`` says so (second-order MAML with its plain options), runs
    of at least ``COMPILE_MIN_STEPS`` steps, on CPU (where it was measured) with a C++ compiler at hand.
    """
    if not hasattr(algorithm, "compile_tasks"):
        if setting:
            log.warning("compile: %s has no compiled path; training eagerly", type(algorithm).__name__)
        return False
    if setting is not None:
        return setting
    pays = getattr(algorithm, "compile_pays", lambda: False)()
    return bool(pays and steps >= COMPILE_MIN_STEPS and device.type == "cpu" and compiler_available())
