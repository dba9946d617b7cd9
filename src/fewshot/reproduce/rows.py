"""What is reproduced: one row per method of the published Omniglot tables, its cells and published numbers.

A row trains from the presets ``omniglot-<presets>-<cell>``; ``shared`` says which cells reuse
another cell's learner, ``settings`` makes a variant of another row's presets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CELLS = ("5w1s", "5w5s", "20w1s", "20w5s")


@dataclass
class Row:
    title: str
    published: dict[str, float]  # cell -> accuracy %
    source: str
    # cell -> the cell whose trained learner it reuses (metric methods learn any N-way task)
    shared: dict[str, str] = field(default_factory=dict)
    note: str = ""
    presets: str = ""  # the preset family, omniglot-{presets}-{cell} (default: the row's own name)
    settings: tuple[str, ...] = ()  # KEY=VALUE overrides on those presets (a variant of another row)
    # algorithm options of the paper's test that the presets leave out (they would not suit deployment),
    # applied to the trained weights; the cell is also tested as the preset says and both are recorded
    test_options: dict = field(default_factory=dict)


ROWS = {
    "protonet": Row(
        "ProtoNet",
        dict(zip(CELLS, (98.8, 99.7, 96.0, 98.9))),
        "Snell et al. 2017, Table 1",
        shared={"20w1s": "5w1s", "20w5s": "5w5s"},
        note="trained 60-way as in the paper; one learner per shot count serves both ways",
    ),
    "matching": Row(
        "MatchingNet",
        dict(zip(CELLS, (98.1, 98.9, 93.8, 98.5))),
        "Vinyals et al. 2016, Table 1",
        shared={"5w1s": "20w1s", "5w5s": "20w5s"},
        note="no FCE; learned softmax scale on the cosines; one learner per shot count, trained 20-way",
    ),
    "relation": Row(
        "RelationNet",
        dict(zip(CELLS, (99.6, 99.8, 97.6, 99.1))),
        "Sung et al. 2018, Table 1",
        shared={"20w1s": "5w1s", "20w5s": "5w5s"},
        note="tested transductively, as the authors' code (it never leaves train mode: BatchNorm normalises with "
        "the statistics of the task's support set, of its queries and of their pairs); cells marked (learner of "
        "5wNs) reuse the 5-way learner of their shot count; `--own` trains a 20-way cell 20-way, as the paper does",
        test_options={"bn": "batch"},
    ),
    "maml": Row("MAML", dict(zip(CELLS, (98.7, 99.9, 95.8, 98.9))), "Finn et al. 2017, Table 1", note="second order"),
    "fomaml": Row(
        "first-order MAML",
        dict(zip(CELLS, (98.3, 99.2, 89.4, 97.9))),
        "Finn et al. 2017, Table 1",
    ),
    "reptile": Row(
        "Reptile",
        dict(zip(CELLS, (97.68, 99.48, 89.43, 97.12))),
        "Nichol et al. 2018, Table 1",
        # the paper trains on 10-shot tasks whatever the test shots: one learner per way serves both shot counts
        shared={"5w5s": "5w1s", "20w5s": "20w1s"},
        note="transductive (test-time BatchNorm uses the task's statistics); the presets take the paper's settings, "
        "but for full-batch steps at test (the paper's minibatches scored lower here); one learner per way serves "
        "1 and 5 shots",
    ),
    "metasgd": Row("Meta-SGD", dict(zip(CELLS, (99.53, 99.93, 95.93, 98.97))), "Li et al. 2017, Table 1"),
    "mamlpp": Row(
        "MAML++",
        dict(zip(CELLS, (99.47, 99.93, 97.65, 99.33))),
        "Antoniou et al. 2019, Table 1",
        note="MAML with the MAML++ options (learned per-step inner rates, per-step BatchNorm weights and biases, "
        "multi-step loss, derivative-order annealing, cosine outer rate) on the maxpool Conv4 of 64 filters of the "
        "paper; transductive BatchNorm as the authors' code; the paper's numbers ensemble its best validation "
        "checkpoints, ours are one learner",
    ),
    "anil": Row(
        "ANIL",
        {"20w1s": 96.2, "20w5s": 98.0},
        "Raghu et al. 2020, Table 2 (20-way only)",
        note="only the head adapts, second order through the head",
    ),
}


def zero_head_variant(name: str) -> Row:
    """Row ``name`` with every task's head starting from zeros: a variant, not the paper's recipe."""
    base = ROWS[name]
    return Row(
        f"{base.title}, zero head",
        base.published,
        base.source,
        note=f"not the paper's recipe: the {base.title} presets with every task's head starting from zeros "
        "(`zero_head`, the zeroing trick of Kao et al. 2022)",
        presets=name,
        settings=("algorithm_options.zero_head=true",),
    )


def bf16_variant(name: str, cells: tuple[str, ...]) -> Row:
    """Row ``name`` trained under bfloat16 autocast (``amp``), to check that it leaves accuracy unchanged."""
    base = ROWS[name]
    return Row(
        f"{base.title}, bfloat16 autocast",
        {c: base.published[c] for c in cells},
        base.source,
        shared={c: t for c, t in base.shared.items() if c in cells},
        note=f"the {base.title} presets trained with `amp=true` (bfloat16 autocast, docs/speed.md section 4), "
        "tested in float32: the check that mixed precision leaves accuracy unchanged",
        presets=name,
        settings=("amp=true",),
    )


ROWS |= {f"{name}-zero": zero_head_variant(name) for name in ("anil", "fomaml")}
ROWS |= {"protonet-bf16": bf16_variant("protonet", ("5w1s", "20w1s")), "maml-bf16": bf16_variant("maml", ("5w5s",))}
# why a row has no measured cells yet (shown in the table)
NOT_RUN = dict.fromkeys(
    ("maml", "metasgd"), "second order wants a GPU; the 20-way 5-shot jobs did not finish inside the lent GPU time"
) | {
    "mamlpp": "second order through 5 steps wants a GPU: benchmarks/mamlpp_gpu.sh",
}
NOT_REACHED = "not reached in the CPU time so far"
SINUSOID = {"k5": "sinusoid-maml-k5", "k10": "sinusoid-maml-k10"}


def cell_shape(cell: str) -> tuple[int, int]:
    ways, shots = cell.rstrip("s").split("w")
    return int(ways), int(shots)


def trained_as(row: Row, cell: str, own: bool) -> str:
    """The cell whose learner evaluates ``cell``: itself with ``own``, else the row's shared learner."""
    return cell if own else row.shared.get(cell, cell)
