"""The speed options of a run: bfloat16 autocast (``amp``) on CPU and the compile default."""

import pytest
import torch
from tiny import TinyProto, clustered, config

from fewshot.algorithms.gradient import FOMAML, MAML
from fewshot.algorithms.metric import ProtoNet
from fewshot.data import get_dataset
from fewshot.engine import TrainConfig, Trainer, evaluate, precision
from fewshot.engine.evaluate import has_batched_path
from fewshot.engine.precision import (
    COMPILE_MIN_STEPS,
    autocast_enabled,
    bf16_supported,
    compile_tasks,
    compiler_available,
)
from fewshot.nn import MLP, Conv4

CPU = torch.device("cpu")


def test_amp_runs_on_cpu_where_bfloat16_is_native(tmp_path):
    """``amp=True`` on CPU: bfloat16 autocast where oneDNN has bf16 kernels, float32 elsewhere;
    either way the run trains, validates and tests."""
    torch.manual_seed(0)
    cfg = config(tmp_path, amp=True, device="cpu")
    trainer = Trainer(cfg, TinyProto(), clustered(), clustered(seed=1), clustered(seed=2))
    assert trainer.amp == bf16_supported(CPU)
    seen = []
    original = trainer.algorithm.meta_loss

    def spy(episode):
        seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return original(episode)

    trainer.algorithm.meta_loss = spy
    result = trainer.fit()
    assert seen and all(s == trainer.amp for s in seen)
    assert result.test is not None and result.test.accuracy > 0.5  # chance is 1/3


@pytest.mark.skipif(not bf16_supported(CPU), reason="no native bfloat16 on this CPU")
def test_amp_protonet_conv4_step_is_bfloat16_and_close_to_float32():
    """Under CPU autocast the convolutions run in bfloat16; the loss stays near float32's."""
    torch.manual_seed(0)
    episode = next(iter(_glyph_sampler(2)))
    model = ProtoNet(Conv4(hidden=8)).train()
    loss32, _ = model.meta_loss(episode)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.encoder(episode.query_x[0]).dtype == torch.bfloat16
        loss16, _ = model.meta_loss(episode)
    loss16.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())
    assert float(loss16.detach()) == pytest.approx(float(loss32.detach()), rel=0.05)


def test_amp_default_is_the_measured_learners_on_an_amx_cpu(monkeypatch):
    """``amp=None`` (the default): bfloat16 for the learners whose accuracy was shown unchanged with
    it (ProtoNet on a convolutional encoder), on a CPU with AMX only; True and False decide."""
    conv_proto = ProtoNet(Conv4(hidden=8))
    assert conv_proto.amp_pays()
    unmeasured = [
        MAML(Conv4(hidden=8, num_classes=5)),  # 5w5s moved by -0.22 points: not shown unchanged
        ProtoNet(MLP(4, (8,))),  # not an image backbone
        ProtoNet(Conv4(hidden=8), distance="cosine"),
        TinyProto(),
    ]
    assert not any(learner.amp_pays() for learner in unmeasured)
    for amx in (True, False):
        monkeypatch.setattr(precision, "amx_supported", lambda amx=amx: amx)
        native = amx and bf16_supported(CPU)
        assert autocast_enabled(None, conv_proto, CPU) == native
        assert not any(autocast_enabled(None, learner, CPU) for learner in unmeasured)
        assert not autocast_enabled(None, conv_proto, torch.device("cuda"))  # measured on CPU only
        assert autocast_enabled(True, TinyProto(), CPU) == bf16_supported(CPU)
        assert not autocast_enabled(False, conv_proto, CPU)


def test_amp_setting_is_checked():
    with pytest.raises(ValueError, match="amp"):
        TrainConfig(amp="yes")


def _glyph_sampler(batch):
    from fewshot.data import EpisodeSampler

    data = get_dataset("glyphs", split="train")
    return EpisodeSampler(data, 5, 1, 3, seed=0, batch_size=batch)


def test_compile_default_is_second_order_maml_of_long_runs():
    maml = MAML(MLP(4, (8,), num_classes=3))
    long, short = COMPILE_MIN_STEPS, COMPILE_MIN_STEPS - 1
    assert compile_tasks(None, maml, CPU, long) == compiler_available()
    assert not compile_tasks(None, maml, CPU, short)  # the warm-up would not pay
    assert not compile_tasks(None, FOMAML(MLP(4, (8,), num_classes=3)), CPU, long)  # not measured to pay
    assert not compile_tasks(None, MAML(MLP(4, (8,), num_classes=3), multi_step_loss=5), CPU, long)
    assert not compile_tasks(None, ProtoNet(MLP(4, (8,))), CPU, long)  # no compiled path
    assert not compile_tasks(True, ProtoNet(MLP(4, (8,))), CPU, long)
    assert compile_tasks(True, maml, CPU, 1) and not compile_tasks(False, maml, CPU, long)


def test_trainer_compiles_the_per_task_function_when_asked(tmp_path):
    torch.manual_seed(0)
    maml = MAML(MLP(8, (16,), num_classes=3), inner_lr=0.1)
    Trainer(config(tmp_path, compile=True, steps=2), maml, clustered())
    assert maml._batcher.compile_options == {}
    eager = MAML(MLP(8, (16,), num_classes=3), inner_lr=0.1)
    Trainer(config(tmp_path, compile=None, steps=2, out=str(tmp_path / "b")), eager, clustered())
    assert eager._batcher.compile_options is None  # a short run: auto stays eager


def test_compile_setting_is_checked():
    with pytest.raises(ValueError, match="compile"):
        TrainConfig(compile="yes")


def test_batched_evaluation_gives_the_per_task_numbers():
    """``evaluate`` with several tasks per episode runs ProtoNet's tasks several per encoder call
    (eval mode, inference mode): the same tasks and the same scores as adapting task by task."""
    torch.manual_seed(0)
    data = get_dataset("glyphs", split="test")
    model = ProtoNet(Conv4(hidden=8)).eval()
    assert has_batched_path(model) and not has_batched_path(TinyProto())
    batched = evaluate(model, data, 5, 1, 3, episodes=12, seed=3, batch_size=5)
    single = evaluate(model, data, 5, 1, 3, episodes=12, seed=3, batch_size=1)
    assert batched.per_episode == pytest.approx(single.per_episode)
    assert batched.mean == pytest.approx(single.mean) and batched.episodes == 12


def test_compile_tasks_switches_on_and_off_without_compiling():
    maml = MAML(MLP(4, (8,), num_classes=3))
    assert maml._batcher.compile_options is None
    maml.compile_tasks()
    assert maml._batcher.compile_options == {}
    maml.compile_tasks({"dynamic": False})
    assert maml._batcher.compile_options == {"dynamic": False}
    maml.compile_tasks(False)
    assert maml._batcher.compile_options is None
