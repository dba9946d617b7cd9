"""Policy-gradient estimator, returns, GAE, the linear baseline and the outer steps against references."""

import math

import pytest
import torch

from fewshot.rl.maml import MetaRL, StepData
from fewshot.rl.objectives import conjugate_gradient, ppo_clip_objective, reinforce_loss
from fewshot.rl.policy import GaussianMLPPolicy, distribution, log_prob
from fewshot.rl.returns import discounted_returns, fit_linear_baseline, gae


def test_reinforce_matches_the_closed_form_gradient_on_a_one_step_bandit():
    # a ~ N(mu, sigma^2), r = -(a - c)^2: J = -((mu - c)^2 + sigma^2), dJ/dmu = -2 (mu - c), dJ/dlog sigma = -2 sigma^2
    mu, log_std, c = torch.tensor([0.3], requires_grad=True), torch.tensor([math.log(0.5)], requires_grad=True), 1.0
    g = torch.Generator().manual_seed(0)
    a = (mu + log_std.exp() * torch.randn(400_000, 1, generator=g)).detach()  # [N, 1]
    r = -((a - c) ** 2).squeeze(1)  # [N]
    logp = log_prob(mu.expand(len(a), 1), log_std, a)  # [N]
    loss = reinforce_loss(logp, r - r.mean(), torch.ones_like(r))
    d_mu, d_log_std = torch.autograd.grad(-loss, [mu, log_std])
    assert d_mu.item() == pytest.approx(-2 * (0.3 - c), abs=0.02)
    assert d_log_std.item() == pytest.approx(-2 * 0.25, abs=0.02)


def test_gae_matches_a_hand_computation_with_an_early_termination():
    rewards = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 0.0]])  # [T=3, E=2]; episode 1 ends after step 1
    values = torch.tensor([[0.5, 0.5], [1.0, 1.0], [1.5, 9.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    gamma, lam = 0.9, 0.8
    adv = gae(rewards, values, mask, gamma, lam)
    d0, d1, d2 = 1 + 0.9 * 1.0 - 0.5, 2 + 0.9 * 1.5 - 1.0, 3 - 1.5
    a2 = d2
    a1 = d1 + 0.72 * a2
    a0 = d0 + 0.72 * a1
    e1, e0 = 2 - 1.0, 1 + 0.9 * 1.0 - 0.5  # episode 1: no value after its end
    expected = torch.tensor([[a0, e0 + 0.72 * e1], [a1, e1], [a2, 0.0]])
    torch.testing.assert_close(adv, expected)
    # lambda = 1: discounted return minus value
    ret = discounted_returns(rewards, mask, gamma)
    torch.testing.assert_close(ret[:, 0], torch.tensor([1 + 0.9 * 2 + 0.81 * 3, 2 + 0.9 * 3, 3.0]))
    torch.testing.assert_close(gae(rewards, values, mask, gamma, 1.0), (ret - values) * mask)


def test_linear_baseline_fits_returns_that_are_linear_in_its_features():
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(20, 3, 4, 2, generator=g)  # [T, G, K, D]
    t = torch.arange(20.0).view(20, 1, 1) / 100
    returns = 2 * obs[..., 0] - obs[..., 1] ** 2 + 5 * t + 1  # [T, G, K]
    values = fit_linear_baseline(obs, returns, torch.ones_like(returns))
    torch.testing.assert_close(values, returns, atol=1e-3, rtol=0)


def test_conjugate_gradient_solves_a_positive_definite_system():
    a = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    b = torch.tensor([1.0, 2.0], dtype=torch.float64)
    torch.testing.assert_close(conjugate_gradient(lambda v: a @ v, b), torch.linalg.solve(a, b))


def test_ppo_clip_gives_no_gradient_past_the_clip_in_the_advantage_direction():
    logp = torch.tensor([math.log(1.5), math.log(0.5), math.log(1.1)], requires_grad=True)
    objective = ppo_clip_objective(logp, torch.zeros(3), torch.tensor([1.0, -1.0, 1.0]), torch.ones(3), clip=0.2)
    (grad,) = torch.autograd.grad(objective, logp)
    torch.testing.assert_close(grad, torch.tensor([0.0, 0.0, 1.1 / 3]))


def synthetic_steps(policy, inner_steps, B=3, T=4, K=2, seed=0):
    """Random episodes (StepData) whose old log-probabilities are the adapted policies' own."""
    g = torch.Generator().manual_seed(seed)
    D, A = policy.obs_dim, policy.act_dim

    def batch():
        obs, actions = torch.randn(B, T, K, D, generator=g, dtype=torch.float64), torch.randn(B, T, K, A, generator=g)
        return obs, actions.double(), torch.randn(B, T, K, generator=g).double(), torch.ones(B, T, K).double()

    return [batch() for _ in range(inner_steps + 1)]


def as_step_data(learner, batches):
    """StepData with the old distribution of the policy adapted on the batches before each one."""
    theta = {k: v.detach() for k, v in learner.policy.named_parameters()}
    steps = []
    for obs, actions, adv, mask in batches:
        adapted = learner.adapt(theta, steps, obs.shape[0])
        mean, log_std = torch.func.vmap(lambda p, o: distribution(learner.policy, p, o))(adapted, obs)
        log_std = log_std.view(obs.shape[0], 1, 1, -1).expand_as(mean)
        steps.append(StepData(obs, actions, adv, mask, log_prob(mean, log_std, actions), mean, log_std))
    return steps[:-1], steps[-1]


@pytest.mark.parametrize("fisher", ["first_order", "full"])
def test_trpo_step_improves_the_surrogate_within_the_kl_constraint(fisher):
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(3, 2, (8,)).double()
    learner = MetaRL(policy, inner_lr=0.5, inner_steps=1, outer="trpo", max_kl=0.01, fisher=fisher)
    inner, outer = as_step_data(learner, synthetic_steps(policy, 1))
    before, kl0 = learner.meta_objective(inner, outer)
    assert kl0.item() == pytest.approx(0.0, abs=1e-12)  # the data's own policy
    stats = learner.outer_step(inner, outer)
    after, kl = learner.meta_objective(inner, outer)
    assert stats["accepted"] == 1.0
    assert 0 < kl.item() <= 0.01 and after.item() > before.item()
    assert stats["kl"] == pytest.approx(kl.item())
