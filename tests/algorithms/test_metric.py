"""ProtoNet, MatchingNet and RelationNet against hand-written references (tiny models, CPU, fast)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fewshot.algorithms.metric import (
    Conv4Maps,
    FullContextEmbedding,
    MatchingNet,
    ProtoNet,
    RelationModule,
    RelationNet,
)
from fewshot.data import Episode
from fewshot.nn import MLP, Conv4

DIM = 6


def episode(b=2, labels=(0, 0, 1, 1, 2, 2), queries=4, ways=3, shape=(DIM,), seed=0, dtype=torch.float64):
    """B tasks with the given support labels (any shots per class) and `queries` per class."""
    g = torch.Generator().manual_seed(seed)
    sy = torch.tensor(labels).repeat(b, 1)
    qy = torch.arange(ways).repeat_interleave(queries).repeat(b, 1)
    return Episode(
        torch.randn(b, len(labels), *shape, generator=g, dtype=dtype), sy,
        torch.randn(b, qy.shape[1], *shape, generator=g, dtype=dtype), qy,
    )  # fmt: skip


def mlp_encoder():
    torch.manual_seed(0)
    return MLP(DIM, hidden=(16, 8)).double()  # no BatchNorm: embeddings do not depend on the batch


def image_episode(b=2, k=1, q=2, ways=3, size=16, seed=0):
    labels = tuple(torch.arange(ways).repeat_interleave(k).tolist())
    return episode(b, labels, q, ways, (1, size, size), seed, torch.float32)


def snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def assert_same_state(module, before):
    after = module.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k


# --------------------------------------------------------------------------- ProtoNet


def proto_reference(encoder, ep, cosine_scale=None):
    """Per task, per class: mean of support embeddings; logits -||q - c||^2 (or scale * cos)."""
    out = []
    for t in range(ep.batch_size):
        zs, zq, sy = encoder(ep.support_x[t]), encoder(ep.query_x[t]), ep.support_y[t]
        rows = []
        for q in zq:
            row = []
            for n in range(int(sy.max()) + 1):
                c = torch.stack([zs[i] for i in range(len(sy)) if sy[i] == n]).mean(0)
                if cosine_scale is None:
                    row.append(-((q - c) ** 2).sum())
                else:
                    row.append(cosine_scale * (q @ c) / (q.norm() * c.norm()))
            rows.append(torch.stack(row))
        out.append(torch.stack(rows))
    return torch.stack(out)


@pytest.mark.parametrize(
    "labels", [(0, 0, 1, 1, 2, 2), (0, 1, 1, 1, 2, 2), (0, 0, 0, 0, 1, 2)], ids=["equal", "unequal", "skewed"]
)
def test_protonet_euclidean_logits_closed_form(labels):
    model = ProtoNet(mlp_encoder())
    ep = episode(labels=labels)
    torch.testing.assert_close(model.logits(ep), proto_reference(model.encoder, ep))


def test_protonet_cosine_logits_closed_form():
    model = ProtoNet(mlp_encoder(), distance="cosine", scale=3.0).double()
    ep = episode(labels=(0, 1, 1, 2, 2, 2))
    torch.testing.assert_close(model.logits(ep), proto_reference(model.encoder, ep, cosine_scale=3.0))
    loss, _ = model.meta_loss(ep)
    loss.backward()
    assert isinstance(model.scale, nn.Parameter) and model.scale.grad is not None
    fixed = ProtoNet(mlp_encoder(), distance="cosine", learn_scale=False)
    assert fixed.scale == 10.0 and not any(p.dim() == 0 for p in fixed.parameters())


def test_protonet_meta_loss_is_cross_entropy_and_reaches_encoder():
    model = ProtoNet(mlp_encoder())
    ep = episode(b=3)
    loss, metrics = model.meta_loss(ep)
    ref = proto_reference(model.encoder, ep)
    per_task = torch.stack([F.cross_entropy(ref[t], ep.query_y[t]) for t in range(3)])
    torch.testing.assert_close(loss, per_task.mean())
    assert metrics["loss"] == pytest.approx(float(loss.detach()))
    assert metrics["accuracy"] == pytest.approx(float((ref.argmax(-1) == ep.query_y).double().mean()))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def test_protonet_single_encoder_call():
    calls = []
    encoder = mlp_encoder()
    encoder.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    ProtoNet(encoder).meta_loss(episode(b=3))
    assert calls == [3 * (6 + 12)]


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_protonet_adapt_matches_meta_loss_logits(distance):
    torch.manual_seed(0)
    model = ProtoNet(Conv4(hidden=8, image_size=16), distance=distance)
    model.train()
    model.meta_loss(image_episode(seed=1))[0].backward()  # move BN running stats off their init
    model.eval()
    ep = image_episode(b=2, k=2, q=3)
    logits = model.logits(ep)
    for t in range(2):
        predict = model.adapt(ep.support_x[t], ep.support_y[t])
        torch.testing.assert_close(predict(ep.query_x[t]), logits[t], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_protonet_adapt_leaves_state_untouched(mode):
    torch.manual_seed(0)
    model = ProtoNet(Conv4(hidden=8, image_size=16)).train(mode == "train")
    ep = image_episode()
    before = snapshot(model)
    logits = model.adapt(ep.support_x[0], ep.support_y[0])(ep.query_x[0])
    assert logits.shape == (6, 3) and not logits.requires_grad
    assert_same_state(model, before)
    assert all(p.grad is None for p in model.parameters())
    if mode == "train":  # while meta_loss does update the BatchNorm statistics
        model.meta_loss(ep)
        key = "encoder.features.0.1.running_mean"
        assert not torch.equal(before[key], model.state_dict()[key])


def test_protonet_errors():
    with pytest.raises(ValueError, match="unknown distance 'manhattan'"):
        ProtoNet(mlp_encoder(), distance="manhattan")
    ep = episode(b=1)
    with pytest.raises(ValueError, match="missing \\[1\\]"):
        ProtoNet(mlp_encoder()).adapt(ep.support_x[0], torch.tensor([0, 0, 2, 2, 2, 2]))


# --------------------------------------------------------------------------- MatchingNet


def matching_reference(encoder, ep, scale=1.0):
    """P(n | q) = sum over support i of class n of exp(s cos(q, x_i)) / sum_j exp(s cos(q, x_j))."""
    out = []
    for t in range(ep.batch_size):
        zs, zq, sy = encoder(ep.support_x[t]), encoder(ep.query_x[t]), ep.support_y[t]
        ways = int(sy.max()) + 1
        rows = []
        for q in zq:
            w = [torch.exp(scale * (q @ s) / (q.norm() * s.norm())) for s in zs]
            total = sum(w)
            rows.append(torch.stack([sum(w[i] for i in range(len(sy)) if sy[i] == n) / total for n in range(ways)]))
        out.append(torch.stack(rows))
    return torch.stack(out)


@pytest.mark.parametrize("scale", [1.0, 10.0])
@pytest.mark.parametrize("labels", [(0, 0, 1, 1, 2, 2), (0, 1, 1, 1, 2, 2)])
def test_matching_probabilities_match_attention_formula(labels, scale):
    model = MatchingNet(mlp_encoder(), scale=scale, learn_scale=scale != 1.0)
    ep = episode(labels=labels)
    ref = matching_reference(model.encoder, ep, scale)
    torch.testing.assert_close(model.logits(ep).exp(), ref)
    loss, metrics = model.meta_loss(ep)
    torch.testing.assert_close(loss, -ref.gather(-1, ep.query_y[..., None]).log().mean())
    assert metrics["accuracy"] == pytest.approx(float((ref.argmax(-1) == ep.query_y).double().mean()))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert isinstance(model.scale, float) == (scale == 1.0)  # the paper's plain cosine is fixed


def test_matching_invariant_to_support_order():
    model = MatchingNet(mlp_encoder())
    ep = episode()
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    shuffled = Episode(ep.support_x[:, perm], ep.support_y[:, perm], ep.query_x, ep.query_y)
    torch.testing.assert_close(model.logits(shuffled), model.logits(ep))


def fce_model(steps=3):
    model = MatchingNet(mlp_encoder(), fce=True, steps=steps).double()
    return model


def test_fce_gives_probabilities_and_trains_the_lstms():
    model = fce_model()
    ep = episode(b=2)
    log_p = model.logits(ep)
    assert log_p.shape == (2, 12, 3)
    torch.testing.assert_close(log_p.exp().sum(-1), torch.ones(2, 12, dtype=torch.float64))
    loss, metrics = model.meta_loss(ep)
    assert set(metrics) >= {"loss", "accuracy"}
    loss.backward()
    for lstm in (model.fce.support_lstm, model.fce.query_cell):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lstm.parameters())
    assert all(p.grad is not None for p in model.encoder.parameters())


def test_fce_queries_are_embedded_independently():
    model = fce_model()
    ep = episode(b=2)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(0))
    shuffled = Episode(ep.support_x, ep.support_y, ep.query_x[:, perm], ep.query_y[:, perm])
    torch.testing.assert_close(model.logits(shuffled), model.logits(ep)[:, perm])
    one_task = model.logits(ep.task(1))  # and tasks do not see each other
    torch.testing.assert_close(one_task[0], model.logits(ep)[1])


def lstm_step(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, g, o = (w_ih @ x + b_ih + w_hh @ h + b_hh).chunk(4)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def test_fce_matches_the_papers_equations():
    """Vinyals et al. (2016) appendix, written out for one task, one query at a time."""
    fce = FullContextEmbedding(4, steps=3).double()
    g = torch.Generator().manual_seed(0)
    g0, f0 = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(3, 4, generator=g, dtype=torch.float64)
    lstm = fce.support_lstm
    fwd_w = (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
    bwd_w = (lstm.weight_ih_l0_reverse, lstm.weight_hh_l0_reverse, lstm.bias_ih_l0_reverse, lstm.bias_hh_l0_reverse)
    zero = torch.zeros(4, dtype=torch.float64)
    h, c, fwd = zero, zero, []
    for i in range(5):
        h, c = lstm_step(g0[i], h, c, *fwd_w)
        fwd.append(h)
    h, c, bwd = zero, zero, [None] * 5
    for i in reversed(range(5)):
        h, c = lstm_step(g0[i], h, c, *bwd_w)
        bwd[i] = h
    g_ref = torch.stack([g0[i] + fwd[i] + bwd[i] for i in range(5)])  # g(x_i, S) = h_fwd + h_bwd + g'(x_i)
    g_out = fce.embed_support(g0[None])[0]
    torch.testing.assert_close(g_out, g_ref)

    cell = fce.query_cell
    d = 4  # the LSTM's weights on its recurrent input [h, r]: W_h for h, W_r for r
    w_x, w_r = cell.weight_ih[:, :d], cell.weight_ih[:, d:]
    for q in range(3):
        h, c = zero, zero
        for _ in range(3):
            r = torch.softmax(g_ref @ h, 0) @ g_ref  # r_{k-1}: read-attention with h_{k-1}
            gates = w_x @ f0[q] + torch.cat([cell.weight_hh, w_r], 1) @ torch.cat([h, r]) + cell.bias_ih + cell.bias_hh
            i, f, gg, o = gates.chunk(4)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
            h = torch.sigmoid(o) * torch.tanh(c) + f0[q]  # h_k = h^_k + f'(x)
        torch.testing.assert_close(fce.embed_query(f0[None], g_out[None])[0, q], h)


def test_matching_adapt_matches_logits_and_leaves_state():
    for fce in (False, True):
        torch.manual_seed(0)
        model = MatchingNet(Conv4(hidden=8, image_size=16), fce=fce).eval()
        ep = image_episode(k=2, q=3)
        before = snapshot(model)
        logits = model.logits(ep)
        for t in range(2):
            predicted = model.adapt(ep.support_x[t], ep.support_y[t])(ep.query_x[t])
            torch.testing.assert_close(predicted, logits[t], rtol=1e-4, atol=1e-4)
        model.train()
        model.adapt(ep.support_x[0], ep.support_y[0])(ep.query_x[0])
        assert_same_state(model, before)


def test_matching_fce_needs_a_width():
    with pytest.raises(ValueError, match="feature_dim"):
        MatchingNet(nn.Flatten(), fce=True)
    assert MatchingNet(nn.Flatten(), fce=True, feature_dim=DIM).fce.dim == DIM


# --------------------------------------------------------------------------- RelationNet


def relation_model(aggregate="sum", size=16):
    torch.manual_seed(0)
    return RelationNet(Conv4Maps(hidden=8, image_size=size), aggregate=aggregate)


def score_pairs(relation, pairs):
    """The paper's layout: every concatenated pair [P, 2C, h, w] through all of the module's layers -> [P]."""
    return torch.sigmoid(relation.fc(relation.convs(pairs))).squeeze(-1)


@pytest.mark.parametrize("train", [True, False], ids=["batch-stats", "running-stats"])
def test_relation_module_split_conv_matches_concatenated_pairs(train):
    torch.manual_seed(0)
    module = RelationModule((6, 5, 5), hidden=8).train(train)
    classes = torch.randn(2, 3, 6, 5, 5, requires_grad=True)  # B=2, N=3
    queries = torch.randn(2, 4, 6, 5, 5, requires_grad=True)  # Q=4
    scores = module(classes, queries)  # [B, Q, N]
    left = classes[:, None].expand(-1, 4, -1, -1, -1, -1)
    right = queries[:, :, None].expand(-1, -1, 3, -1, -1, -1)
    reference = score_pairs(module, torch.cat([left, right], 3).flatten(0, 2)).view(2, 4, 3)
    assert scores.shape == (2, 4, 3)
    torch.testing.assert_close(scores, reference, rtol=1e-5, atol=1e-6)
    weights = torch.rand(2, 4, 3)  # a loss that weighs every pair differently
    grads = torch.autograd.grad((scores * weights).sum(), [classes, queries, *module.parameters()])
    expected = torch.autograd.grad((reference * weights).sum(), [classes, queries, *module.parameters()])
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6)


def relation_reference(model, ep, aggregate):
    """Per task: class map = sum (or mean) of its support maps; score = relation(cat(class, query))."""
    out = []
    for t in range(ep.batch_size):
        zs, zq, sy = model.encoder(ep.support_x[t]), model.encoder(ep.query_x[t]), ep.support_y[t]
        maps = []
        for n in range(int(sy.max()) + 1):
            members = torch.stack([zs[i] for i in range(len(sy)) if sy[i] == n])
            maps.append(members.sum(0) if aggregate == "sum" else members.mean(0))
        score = lambda m, q: score_pairs(model.relation, torch.cat([m, q])[None])[0]  # noqa: E731
        out.append(torch.stack([torch.stack([score(m, q) for m in maps]) for q in zq]))
    return torch.stack(out)


@pytest.mark.parametrize("aggregate", ["sum", "mean"])
@pytest.mark.parametrize("labels", [(0, 0, 0, 1, 1, 1, 2, 2, 2), (0, 1, 1, 2, 2, 2)], ids=["K=3", "unequal"])
def test_relation_class_aggregation_matches_hand_written(aggregate, labels):
    model = relation_model(aggregate)
    model.train()
    model.meta_loss(image_episode(seed=3))  # BN running stats off their init
    model.eval()  # per-example BatchNorm, so the hand-written loop can score one pair at a time
    ep = episode(labels=labels, queries=2, shape=(1, 16, 16), dtype=torch.float32)
    torch.testing.assert_close(model.logits(ep), relation_reference(model, ep, aggregate), rtol=1e-4, atol=1e-5)


def test_relation_scores_and_mse_loss():
    model = relation_model()
    ep = image_episode(b=2, k=2, q=3)
    loss, metrics = model.meta_loss(ep)
    model.eval()
    scores = model.logits(ep)  # [B, NQ, N]
    assert scores.shape == (2, 9, 3) and scores.min() >= 0 and scores.max() <= 1
    model.train()
    scores = model.logits(ep)
    target = torch.zeros(2, 9, 3)
    for t in range(2):
        for j in range(9):
            target[t, j, ep.query_y[t, j]] = 1.0
    torch.testing.assert_close(model.meta_loss(ep)[0], ((scores - target) ** 2).mean())
    loss, metrics = model.meta_loss(ep)
    loss.backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.relation.parameters())


def test_relation_adapt_matches_logits_and_leaves_state():
    model = relation_model()
    ep = image_episode(k=2, q=2)
    model.meta_loss(ep)
    model.eval()
    logits = model.logits(ep)
    for t in range(2):
        torch.testing.assert_close(model.adapt(ep.support_x[t], ep.support_y[t])(ep.query_x[t]), logits[t])
    model.train()
    before = snapshot(model)
    model.adapt(ep.support_x[0], ep.support_y[0])(ep.query_x[0])
    assert_same_state(model, before)


def test_relation_transductive_adapt_uses_batch_statistics():
    model = relation_model()
    ep = image_episode(k=2, q=3)
    model.meta_loss(ep)  # running statistics off their init
    model.eval()
    sx, sy, qx = ep.support_x[0], ep.support_y[0], ep.query_x[0]
    inductive = model.adapt(sx, sy)(qx)
    model.bn = "batch"
    before = snapshot(model)
    scores = model.adapt(sx, sy)(qx)  # [Q, N]
    assert_same_state(model, before)
    # reference: a train-mode copy normalises each forward with its own batch (support, queries, pairs)
    ref = copy.deepcopy(model).train()
    zs, zq = ref.encoder(sx), ref.encoder(qx)
    maps = torch.stack([zs[sy == n].sum(0) for n in range(3)])  # [N, C, h, w]
    pairs = torch.cat([maps[None].expand(len(zq), -1, -1, -1, -1), zq[:, None].expand(-1, 3, -1, -1, -1)], 2)
    expected = score_pairs(ref.relation, pairs.flatten(0, 1)).view(len(zq), 3)
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(scores, inductive, atol=1e-3)
    model.train()  # in train mode too, adapt leaves every buffer (num_batches_tracked included) as it was
    before = snapshot(model)
    torch.testing.assert_close(model.adapt(sx, sy)(qx), expected, rtol=1e-4, atol=1e-5)
    assert_same_state(model, before)
    with pytest.raises(ValueError, match="unknown bn"):
        RelationNet(Conv4Maps(), bn="query")


def test_relation_encoders_and_shapes():
    for size, side in [(28, 7), (84, 21)]:
        enc = Conv4Maps(in_channels=3, hidden=8, image_size=size)
        assert enc.out_shape == (8, side, side)
        assert enc(torch.zeros(2, 3, size, size)).shape == (2, 8, side, side)
        classes, queries = torch.zeros(2, 3, 8, side, side), torch.zeros(2, 5, 8, side, side)
        assert RelationNet(enc).relation(classes, queries).shape == (2, 5, 3)
    with pytest.raises(ValueError, match="feature maps"):
        RelationNet(Conv4(hidden=8))  # a flattening encoder has no map shape
    custom = RelationNet(nn.Conv2d(1, 4, 3, padding=1), feature_shape=(4, 5, 5))
    assert custom.meta_loss(image_episode(size=5))[0].isfinite()
    with pytest.raises(ValueError, match="feature maps"):
        RelationNet(nn.Flatten(), relation_module=nn.Identity()).meta_loss(image_episode())
    with pytest.raises(ValueError, match="unknown aggregate"):
        RelationNet(Conv4Maps(), aggregate="max")


def test_protonet_predict_episode_batches_the_adapt_values():
    """In eval mode ``predict_episode`` scores every task in one encoder call with the values
    that ``adapt`` gives task by task; in train mode (batch statistics) it declines."""
    torch.manual_seed(0)
    model = ProtoNet(Conv4(hidden=8, image_size=16))
    episode = Episode(
        torch.rand(3, 6, 1, 16, 16),
        torch.arange(3).repeat_interleave(2).repeat(3, 1),
        torch.rand(3, 9, 1, 16, 16),
        torch.arange(3).repeat_interleave(3).repeat(3, 1),
    )
    model.train()
    model.meta_loss(episode)[0].backward()  # running statistics away from their initial values
    assert model.predict_episode(episode) is None
    model.eval()
    with torch.inference_mode():
        batched = model.predict_episode(episode)
    assert batched is not None and batched.shape == (3, 9, 3)
    for i in range(3):
        expected = model.adapt(episode.support_x[i], episode.support_y[i])(episode.query_x[i])
        torch.testing.assert_close(batched[i], expected, rtol=1e-4, atol=1e-4)
