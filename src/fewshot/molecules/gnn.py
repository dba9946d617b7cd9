"""Plain-torch message passing over packed molecular graphs (see ``graphs``), with an optional fingerprint branch."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fewshot.molecules.graphs import ATOM_VOCAB, packed_atoms
from fewshot.nn import MLP

EDGE_CHANNELS = 6  # single, double, triple, aromatic, conjugated, in ring


def edge_channels(codes: Tensor) -> Tensor:
    """Bond codes [M, A, A] (0 none, 1 + type + 4 conj + 8 ring) -> 0/1 adjacency [M, 6, A, A]."""
    present = codes > 0
    c = (codes - 1).clamp(min=0)
    kinds = [(c % 4 == t) & present for t in range(4)]
    kinds += [((c // 4) % 2 == 1) & present, (c // 8 == 1) & present]
    return torch.stack(kinds, dim=1).float()


class MessagePassing(nn.Module):
    """One relational layer: per edge channel e the neighbour sum s_e = adj_e @ h, then
    m = W [s_1, ..., s_6] and h <- LayerNorm(h + MLP([h, m]))."""

    def __init__(self, hidden: int):
        super().__init__()
        self.message = nn.Linear(EDGE_CHANNELS * hidden, hidden)
        self.update = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.norm = nn.LayerNorm(hidden)

    def forward(self, h: Tensor, adj: Tensor, mask: Tensor) -> Tensor:
        m_, e, a = adj.shape[:3]
        sums = torch.bmm(adj.view(m_, e * a, a), h).view(m_, e, a, -1)  # [M, 6, A, H]
        m = self.message(sums.transpose(1, 2).reshape(m_, a, -1))  # [M, A, 6H] -> [M, A, H]
        h = self.norm(h + self.update(torch.cat([h, m], dim=-1)))  # [M, A, H]
        return h * mask[..., None]


class GNNEncoder(nn.Module):
    """Molecule embeddings from packed inputs x [M, fp_dim + A * (F + A)] -> [M, out_dim].

    Atom codes are embedded (one table per feature, summed), ``layers`` rounds of message
    passing, then sum, mean and max over atoms -> ``graph_dim``. With ``fp_dim > 0`` the
    leading fingerprint (ECFP) goes through its own MLP (``fewshot.nn.MLP`` with widths
    ``fp_hidden``) and both are concatenated before the linear output layer: FS-Mol's
    "GNN + ECFP" encoder. ``warm_start`` makes it start as a trained fingerprint MLP.
    """

    def __init__(
        self,
        hidden: int = 128,
        layers: int = 4,
        out_dim: int = 128,
        fp_dim: int = 0,
        fp_hidden: tuple[int, ...] = (512, 128),
        graph_dim: int | None = None,
        atom_vocab: tuple[int, ...] = ATOM_VOCAB,
    ):
        super().__init__()
        graph_dim = graph_dim or out_dim
        self.fp_dim, self.atom_dim, self.out_dim, self.graph_dim = fp_dim, len(atom_vocab), out_dim, graph_dim
        self.embed = nn.ModuleList(nn.Embedding(v + 1, hidden, padding_idx=0) for v in atom_vocab)
        self.layers = nn.ModuleList(MessagePassing(hidden) for _ in range(layers))
        self.readout = nn.Sequential(nn.Linear(3 * hidden, graph_dim), nn.ReLU())
        joined = graph_dim
        if fp_dim:
            self.fingerprint = MLP(in_features=fp_dim, hidden=tuple(fp_hidden))
            joined += self.fingerprint.feature_dim
        self.head = nn.Linear(joined, out_dim)

    @torch.no_grad()
    def warm_start(self, fingerprint_mlp: nn.Module) -> None:
        """Copy a trained fingerprint MLP into the ECFP branch and make the output layer pass it
        through unchanged (graph part weighted 0): the encoder starts as that MLP."""
        self.fingerprint.load_state_dict(fingerprint_mlp.state_dict())
        width = self.fingerprint.feature_dim
        if self.out_dim != width:
            raise ValueError(f"warm start needs out_dim == the MLP's width {width}, got {self.out_dim}")
        self.head.weight.zero_()
        self.head.weight[:, self.graph_dim :] = torch.eye(width, device=self.head.weight.device)
        self.head.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])  # [M, L]
        graph = x[:, self.fp_dim :]
        a = packed_atoms(graph.shape[1], self.atom_dim)
        graph = graph.view(-1, a, self.atom_dim + a)  # [M, A, F + A]
        codes = graph[..., : self.atom_dim].long()  # [M, A, F]; 0 = padding
        mask = (codes[..., 0] > 0).float()  # [M, A]
        adj = edge_channels(graph[..., self.atom_dim :].long())  # [M, 6, A, A]
        h = sum(emb(codes[..., f]) for f, emb in enumerate(self.embed))  # [M, A, H]
        for layer in self.layers:
            h = layer(h, adj, mask)
        count = mask.sum(1, keepdim=True).clamp(min=1)  # [M, 1]
        pooled = torch.cat(
            [h.sum(1), h.sum(1) / count, h.masked_fill(mask[..., None] == 0, -1e4).amax(1)], dim=-1
        )  # [M, 3H]
        z = self.readout(pooled)  # [M, graph_dim]
        if self.fp_dim:
            z = torch.cat([z, self.fingerprint(x[:, : self.fp_dim])], dim=-1)  # [M, graph_dim + fp width]
        return self.head(z).view(*lead, -1)
