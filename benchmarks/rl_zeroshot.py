"""Zero-shot skills from text against meta-RL adaptation, on held-out descriptions (issue 37).

Needs two runs of one family, trained with the same budget: a task-conditioned policy (``--oracle``, the
``<family>-oracle`` preset) and an unconditioned MAML policy (``--maml``, ``<family>-maml``); trains them
first with ``--iterations N`` if the folders are empty. Every method is measured on the same held-out tasks
(the parameters stated by held-out descriptions: unseen phrasings and unseen values), with the same
episodes per task, and reported as mean return ± 95% CI over tasks:

- zero-shot from text: the conditioned policy with the parameters read from the description;
- MAML, 0 / 1 / 3 policy-gradient steps (0 steps: the unconditioned meta-learned policy);
- text then adapt, 1 step: one batch of episodes with the text-read parameters, then the parameters
  re-estimated from its transitions (latent inference under the family's reward), then act;
- latent inference from scratch, 1 step: the same from the family's centre, without the text;
- oracle: the conditioned policy with the true parameters;
- on the opposite pairs, also the conditioned policy given the pair partner's parameters (the opposite
  instruction): how much the conditioning matters.

Also the error of the read parameters per encoder, and against an adapter that regresses on the sentence
embedding alone (no explicit reading); the opposite-instruction pairs apart.

    OMP_NUM_THREADS=1 python benchmarks/rl_zeroshot.py --oracle runs/rl-zeroshot/pointnav-oracle \
        --maml runs/rl-zeroshot/pointnav-maml --tasks 40 --pairs 20 --episodes 20 --encoders hashing-512,minilm
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from fewshot.engine.evaluate import confidence_interval
from fewshot.rl.config import preset
from fewshot.rl.errors import RLError
from fewshot.rl.evaluate import adaptation_curve
from fewshot.rl.interpret import TextAdapter
from fewshot.rl.language import FREE_TEXT, descriptions, opposite_pairs
from fewshot.rl.rollouts import Sampler
from fewshot.rl.train import RLTrainer, load_policy
from fewshot.rl.zeroshot import Learner, collect, infer_context
from fewshot.text.encoders import get_encoder


def train_if_missing(run: Path, name: str, iterations: int) -> None:
    if not (run / "checkpoint").is_dir():
        RLTrainer.create(preset(name, {"iterations": iterations}), run, quiet=True).run()


def cell(values: torch.Tensor) -> str:
    return f"{float(values.mean()):.2f} ± {confidence_interval(values):.2f}"


def embedding_only(family: str, ranges: dict, encoder_name: str, texts: list[str]) -> torch.Tensor:
    """The ablation: ridge from the sentence embedding alone to the scaled parameters."""
    encoder = get_encoder(encoder_name)
    adapter = TextAdapter(family, ranges, encoder)
    train = descriptions(family, "train", 600)
    x = encoder.encode([d.text for d in train])
    y = torch.tensor([adapter.scale(d.params) for d in train])
    x1 = torch.cat([x, torch.ones(len(x), 1)], 1).double()
    w = torch.linalg.solve(x1.T @ x1 + 1e-2 * torch.eye(x1.shape[1]).double(), x1.T @ y.double()).float()
    q = encoder.encode(texts)
    return (torch.cat([q, torch.ones(len(q), 1)], 1) @ w).clamp(-1, 1)


def param_error(adapter: TextAdapter, z: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    half = torch.tensor([(hi - lo) / 2 for lo, hi in adapter.ranges.values()])
    err = ((z - truth).abs() * half).norm(dim=1)  # [N] in the family's units (Euclidean over parameters)
    return float(err.mean()), float(err.max())


def pair_directions(adapter: TextAdapter, z: torch.Tensor, pairs) -> int:
    """Pairs whose read parameters differ in the right direction on the parameter the pair flips."""
    ok = 0
    for i, (a, b) in enumerate(pairs):
        ta, tb = torch.tensor(adapter.scale(a.params)), torch.tensor(adapter.scale(b.params))
        k = int((ta - tb).abs().argmax())
        ok += int(torch.sign(z[2 * i, k] - z[2 * i + 1, k]) == torch.sign(ta[k] - tb[k]))
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--family", default="pointnav")
    p.add_argument("--oracle", type=Path, help="conditioned run (default runs/rl-zeroshot/<family>-oracle)")
    p.add_argument("--maml", type=Path, help="MAML run (default runs/rl-zeroshot/<family>-maml)")
    p.add_argument("--iterations", type=int, default=30, help="training budget if a run is missing")
    p.add_argument("--tasks", type=int, default=40, help="held-out descriptions")
    p.add_argument("--pairs", type=int, default=20, help="opposite-instruction pairs")
    p.add_argument("--episodes", type=int, default=20, help="episodes per task and step")
    p.add_argument("--encoders", default="hashing-512,minilm", help="first one acts; all are scored")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write the numbers here too")
    args = p.parse_args(argv)
    start = time.perf_counter()
    oracle_run = args.oracle or Path("runs/rl-zeroshot") / f"{args.family}-oracle"
    maml_run = args.maml or Path("runs/rl-zeroshot") / f"{args.family}-maml"
    train_if_missing(oracle_run, f"{args.family}-oracle", args.iterations)
    train_if_missing(maml_run, f"{args.family}-maml", args.iterations)

    held = descriptions(args.family, "heldout", args.tasks, args.seed)
    pairs = opposite_pairs(args.family, args.pairs, args.seed)
    pair_texts = [d for pair in pairs for d in pair]
    encoders = args.encoders.split(",")
    out: dict = {"family": args.family, "tasks": len(held), "pairs": len(pairs), "episodes": args.episodes}
    print(f"# {args.family}: {len(held)} held-out descriptions, {len(pairs)} opposite pairs, {args.episodes} episodes")
    print(f"# machine: {platform.machine()}, torch {torch.__version__}, threads {torch.get_num_threads()}")

    # --- reading the parameters ---------------------------------------------------------------------
    learners = {}
    print("\n| encoder | adapter | fit + read s | parameter error, held-out (mean / max) | opposite pairs right |")
    print("| --- | --- | --- | --- | --- |")
    for name in encoders:
        t0 = time.perf_counter()
        learner = Learner.load(oracle_run, encoder=name, refit=True)
        z_held = learner.adapter.predict([d.text for d in held])
        z_pairs = learner.adapter.predict([d.text for d in pair_texts])
        seconds = time.perf_counter() - t0
        truth = torch.tensor([learner.adapter.scale(d.params) for d in held])
        mean, worst = param_error(learner.adapter, z_held, truth)
        ok = pair_directions(learner.adapter, z_pairs, pairs)
        print(f"| {name} | reading + embedding | {seconds:.1f} | {mean:.4f} / {worst:.4f} | {ok}/{len(pairs)} |")
        ranges = learner.adapter.ranges
        z_emb = embedding_only(args.family, ranges, name, [d.text for d in held])
        z_emb_pairs = embedding_only(args.family, ranges, name, [d.text for d in pair_texts])
        e_mean, e_worst = param_error(learner.adapter, z_emb, truth)
        e_ok = pair_directions(learner.adapter, z_emb_pairs, pairs)
        print(f"| {name} | embedding only (ablation) | - | {e_mean:.4f} / {e_worst:.4f} | {e_ok}/{len(pairs)} |")
        out[f"reading/{name}"] = {"error_mean": mean, "error_max": worst, "pairs_right": ok, "seconds": seconds}
        out[f"embedding_only/{name}"] = {"error_mean": e_mean, "error_max": e_worst, "pairs_right": e_ok}
        learners[name] = learner
    learner = learners[encoders[0]]

    # --- free text written by hand (no template) -----------------------------------------------------------
    free = FREE_TEXT.get(args.family, [])
    if free:
        print(f"\nFree text ({len(free)} hand-written sentences, {encoders[0]}):\n")
        print("| sentence | meant | read as |")
        print("| --- | --- | --- |")
        errors = []
        for text, meant in free:
            try:
                got = learner.interpret(text).params
                err = sum((got[k] - v) ** 2 for k, v in meant.items()) ** 0.5
                errors.append(err)
                shown = ", ".join(f"{v:.2f}" for v in got.values()) + f" (error {err:.2f})"
            except RLError as e:
                shown = f"refused: {str(e).split(' (')[0]}"
            print(f"| {text} | {', '.join(f'{v:.2f}' for v in meant.values())} | {shown} |")
        right = sum(e < 0.05 for e in errors)
        print(f"\nfree text: {len(errors)}/{len(free)} read, {right} within 0.05 of what was meant")
        out["free_text"] = {"sentences": len(free), "read": len(errors), "within_0.05": right}

    # --- returns --------------------------------------------------------------------------------------
    family = learner.family
    policy = learner.conditioned([0.0] * len(family.params))
    rows: dict[str, dict[str, torch.Tensor]] = {}
    for label, group in (("held-out descriptions", held), ("opposite pairs", pair_texts)):
        tasks = [family.task(**d.params) for d in group]
        truth = torch.tensor([family.features(t) for t in tasks])
        z_text = learner.adapter.predict([d.text for d in group])
        sampler = Sampler(family, args.episodes * len(tasks), "sync")
        g = lambda k: torch.Generator().manual_seed(args.seed + k)  # noqa: E731
        r: dict[str, torch.Tensor] = {}
        # every policy is measured on episodes drawn with the same seed (g(2)): common random numbers
        r["zero-shot from text"] = collect(policy, sampler, tasks, z_text, args.episodes, g(2)).task_returns()
        first = collect(policy, sampler, tasks, z_text, args.episodes, g(1))  # the adaptation batch
        z_adapted = infer_context(family, first, z_text)
        r["text then adapt, 1 step"] = collect(policy, sampler, tasks, z_adapted, args.episodes, g(2)).task_returns()
        centre = torch.zeros_like(z_text)
        scratch = collect(policy, sampler, tasks, centre, args.episodes, g(1))
        z_scratch = infer_context(family, scratch, centre)
        r["latent inference from scratch, 1 step"] = collect(
            policy, sampler, tasks, z_scratch, args.episodes, g(2)
        ).task_returns()
        r["oracle (true parameters)"] = collect(policy, sampler, tasks, truth, args.episodes, g(2)).task_returns()
        if label == "opposite pairs":  # does the conditioning matter? act on each pair partner's parameters
            swapped = truth.view(-1, 2, truth.shape[1]).flip(1).reshape_as(truth)
            r["conditioned on the opposite instruction"] = collect(
                policy, sampler, tasks, swapped, args.episodes, g(2)
            ).task_returns()
        sampler.close()
        config, _, maml_policy = load_policy(maml_run)
        maml_sampler = Sampler(family, args.episodes * len(tasks), config.vector)
        curve = adaptation_curve(maml_policy, config, maml_sampler, tasks, [0, 1, 3], args.episodes, args.seed + 3)
        maml_sampler.close()
        per_task = torch.tensor(curve["per_task"])  # [N, 4]
        for k in (0, 1, 3):
            r[f"MAML, {k} step{'s' if k != 1 else ''}"] = per_task[:, k]
        rows[label] = r
        out[f"returns/{label}"] = {k: {"mean": float(v.mean()), "ci95": confidence_interval(v)} for k, v in r.items()}
        errors = (z_text - truth).abs() * torch.tensor([(s.high - s.low) / 2 for s in family.params.values()])
        out[f"param_error/{label}"] = float(errors.norm(dim=1).mean())
        out[f"param_error_after_inference/{label}"] = float(
            ((z_adapted - truth).abs() * torch.tensor([(s.high - s.low) / 2 for s in family.params.values()]))
            .norm(dim=1)
            .mean()
        )

    order = [
        "zero-shot from text", "MAML, 0 steps", "MAML, 1 step", "MAML, 3 steps", "text then adapt, 1 step",
        "latent inference from scratch, 1 step", "oracle (true parameters)", "conditioned on the opposite instruction",
    ]  # fmt: skip
    labels = list(rows)
    print(f"\nReturns ({encoders[0]} reads the text), mean ± 95% CI over tasks:\n")
    print("| method | " + " | ".join(f"{lb} ({len(held) if i == 0 else len(pair_texts)} tasks)" for i, lb in
                                     enumerate(labels)) + " |")  # fmt: skip
    print("| --- |" + " --- |" * len(labels))
    for name in order:
        print(f"| {name} | " + " | ".join(cell(rows[lb][name]) if name in rows[lb] else "-" for lb in labels) + " |")
    for lb in labels:
        print(
            f"\n{lb}: read-parameter error {out[f'param_error/{lb}']:.4f} (family units, Euclidean), "
            f"after 1 step of latent inference {out[f'param_error_after_inference/{lb}']:.4f}"
        )
    out["seconds"] = time.perf_counter() - start
    print(f"\nwall time {out['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
