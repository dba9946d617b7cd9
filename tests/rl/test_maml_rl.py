"""MAML-RL's meta-gradient against a hand-written loop and finite differences; a short run that adapts."""

import pytest
import torch
from test_estimators import as_step_data, synthetic_steps

from fewshot.optim import adam
from fewshot.rl.config import preset
from fewshot.rl.evaluate import adaptation_curve, held_out_tasks
from fewshot.rl.maml import MetaRL
from fewshot.rl.objectives import reinforce_loss, surrogate
from fewshot.rl.policy import GaussianMLPPolicy, log_prob
from fewshot.rl.train import RLTrainer, build

pytest.importorskip("gymnasium", reason="fewshot.rl needs gymnasium: pip install 'fewshot[rl]'")


def hand_meta_objective(policy, theta, batches, outer, lr):
    """The same objective written out: two plain SGD steps with autograd, then the importance-weighted surrogate."""
    params = dict(theta)
    for obs, actions, adv, mask in batches:
        mean = torch.func.functional_call(policy, params, (obs,))[0]
        loss = reinforce_loss(log_prob(mean, params["log_std"], actions), adv, mask)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        params = {k: p - lr * g for (k, p), g in zip(params.items(), grads)}
    mean = torch.func.functional_call(policy, params, (outer.obs,))[0]
    return surrogate(log_prob(mean, params["log_std"], outer.actions), outer.logp_old, outer.advantages, outer.mask)


def test_meta_gradient_matches_a_hand_written_loop_and_finite_differences():
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 1, (3,), activation="tanh").double()
    learner = MetaRL(policy, inner_lr=0.3, inner_steps=2)
    inner, outer = as_step_data(learner, synthetic_steps(policy, 2, B=2))
    objective, _ = learner.meta_objective(inner, outer)
    names, params = zip(*policy.named_parameters())
    ours = torch.autograd.grad(objective, params)

    hand_total = 0
    for b in range(2):  # one task at a time, averaged
        batches = [(s.obs[b], s.actions[b], s.advantages[b], s.mask[b]) for s in inner]
        task_outer = type(outer)(*(getattr(outer, f)[b] for f in outer.__dataclass_fields__))
        hand_total = hand_total + hand_meta_objective(policy, dict(zip(names, params)), batches, task_outer, 0.3) / 2
    hand = torch.autograd.grad(hand_total, params)
    for a, h in zip(ours, hand):
        torch.testing.assert_close(a, h)
    assert any(g.abs().max() > 1e-6 for g in ours)

    # central differences of the objective along a random direction
    direction = [torch.randn_like(p) for p in params]
    eps = 1e-6

    def at(sign):
        with torch.no_grad():
            shifted = {k: p + sign * eps * d for k, p, d in zip(names, params, direction)}
        return float(learner._objective(shifted, {}, *type(inner[0]).stack(inner, 2), *vars(outer).values())[0].mean())

    numeric = (at(1) - at(-1)) / (2 * eps)
    analytic = sum(float((g * d).sum()) for g, d in zip(ours, direction))
    assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-9)


def test_first_order_drops_the_second_order_terms_and_adam_state_carries_over():
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 1, (3,)).double()
    full = MetaRL(policy, inner_lr=0.3, inner_steps=1)
    first = MetaRL(policy, inner_lr=0.3, inner_steps=1, first_order=True)
    inner, outer = as_step_data(full, synthetic_steps(policy, 1))
    g_full = torch.autograd.grad(full.meta_objective(inner, outer)[0], list(policy.parameters()))
    g_first = torch.autograd.grad(first.meta_objective(inner, outer)[0], list(policy.parameters()))
    # first order: the gradient of the outer objective at the adapted parameters, taken as the initial ones'
    assert not all(torch.allclose(a, b) for a, b in zip(g_full, g_first))

    # two Adam steps in two inner_loop calls equal two steps of one Adam
    learner = MetaRL(policy, inner_lr=0.05, inner_steps=2, inner_opt=adam(0.05))
    inner, _ = as_step_data(learner, synthetic_steps(policy, 2))
    theta = dict(policy.named_parameters())
    ours = learner.adapt(theta, inner, 3)
    opt = adam(0.05)
    params, state = {k: v for k, v in theta.items()}, None
    b = 1
    state = opt.init(params)
    for s in inner:
        loss = learner.task_loss(params, s.obs[b], s.actions[b], s.advantages[b], s.mask[b])
        grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
        params, state = opt.step(params, grads, state)
    for k in params:
        torch.testing.assert_close(ours[k][b], params[k])


def test_a_short_pointnav_run_improves_with_adaptation(tmp_path):
    config = preset(
        "pointnav-maml",
        {"iterations": 6, "meta_batch": 10, "episodes": 10, "hidden": [32, 32], "family_options": {"horizon": 50}},
    )
    _, sampler, untrained = build(config)
    tasks = held_out_tasks(sampler.family, 10)
    before = adaptation_curve(untrained.policy, config, sampler, tasks, [0, 1])["steps"]
    result = RLTrainer.create(config, tmp_path / "run", quiet=True).run()
    assert result["completed"]
    trainer_policy = RLTrainer.resume(tmp_path / "run", quiet=True).learner.policy
    after = adaptation_curve(trainer_policy, config, sampler, tasks, [0, 1])["steps"]
    sampler.close()
    assert after["1"]["mean"] > after["0"]["mean"]  # adapting helps
    assert after["1"]["mean"] > before["1"]["mean"] + 5  # and meta-training made it help more
