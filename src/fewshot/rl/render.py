"""``fewshot rl render``: one episode of a policy (adapted on the task first, if asked) as an animated GIF.

Point navigation is drawn with Pillow; MuJoCo families render offscreen through MuJoCo's own renderer,
which needs an OpenGL backend without a display (``MUJOCO_GL=egl`` or ``osmesa``). When none is available
the error says so; training and evaluation never need it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from fewshot.functional import detach, parameters
from fewshot.rl.errors import RLError
from fewshot.rl.policy import distribution
from fewshot.rl.tasks import Task, TaskFamily


def episode_frames(family: TaskFamily, policy: torch.nn.Module, params: dict, task: Task, seed: int, size: int = 240):
    """Frames [H, W, 3] of one episode with the policy's mean action, and the episode's return."""
    mujoco = family.name != "pointnav"
    env = family.make_env(task, render_mode="rgb_array" if mujoco else None)
    obs, _ = env.reset(seed=seed)
    if mujoco:
        try:
            env.render()
        except Exception as e:  # no OpenGL context without a display: say so once, clearly
            env.close()
            raise RLError(
                f"MuJoCo offscreen rendering is unavailable here ({e}); set MUJOCO_GL=egl or osmesa"
            ) from None
    frames, points, total, done = [], [np.zeros(2)], 0.0, False
    while not done:
        with torch.no_grad():
            mean, _ = distribution(policy, params, torch.as_tensor(obs, dtype=torch.float32))
        action = np.clip(mean.numpy(), env.action_space.low, env.action_space.high)
        obs, reward, terminated, truncated, _ = env.step(action)
        total, done = total + float(reward), bool(terminated or truncated)
        if mujoco:
            frames.append(np.asarray(env.render()).copy())
        else:
            points.append(np.asarray(obs, dtype=np.float64))
            frames.append(_draw_point(points, task, size))
    env.close()
    return frames, total


def _draw_point(points: list[np.ndarray], task: Task, size: int) -> np.ndarray:
    scale = size / 2.4  # the square [-1.2, 1.2]^2
    to_px = lambda p: (size / 2 + scale * p[0], size / 2 - scale * p[1])  # noqa: E731
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    gx, gy = to_px((task.params["goal_x"], task.params["goal_y"]))
    draw.ellipse([gx - 5, gy - 5, gx + 5, gy + 5], fill="green")
    draw.line([to_px(p) for p in points], fill="blue", width=2)
    x, y = to_px(points[-1])
    draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill="red")
    return np.asarray(image)


def write_gif(frames: list[np.ndarray], out: str | Path, fps: int = 20) -> Path:
    out = Path(out)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(out, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return out


def policy_params(policy: torch.nn.Module) -> dict:
    return detach(parameters(policy))
