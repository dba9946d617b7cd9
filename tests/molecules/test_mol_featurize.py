import logging

import numpy as np
import pytest
import torch
from rdkit import Chem, DataStructs
from rdkit.Chem import AllChem

from fewshot.molecules.descriptors import RDKitDescriptors, Standardizer
from fewshot.molecules.featurize import featurize, make_featurizers
from fewshot.molecules.fingerprints import ECFP
from fewshot.molecules.graphs import ATOM_VOCAB, MolGraphs, pack_graphs, packed_atoms
from fewshot.molecules.smiles import InvalidSmilesError, canonical_smiles, parse_smiles

MOLS = ["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "CN1CCC[C@H]1c1cccnc1", "[Na+].[Cl-]"]


@pytest.mark.parametrize("radius,bits", [(2, 2048), (3, 1024), (1, 64)])
def test_ecfp_bits_match_rdkit(radius, bits):
    x = featurize(MOLS, ECFP(radius, bits), cache=False).features.take(torch.arange(len(MOLS)))
    for row, smi in zip(x, MOLS):
        expected = AllChem.GetMorganFingerprintAsBitVect(Chem.MolFromSmiles(smi), radius, nBits=bits)
        reference = np.zeros(bits)
        DataStructs.ConvertToNumpyArray(expected, reference)
        assert row.tolist() == reference.tolist()


def test_ecfp_counts_match_rdkit():
    x = featurize(MOLS, ECFP(2, 512, counts=True), cache=False).features.take(torch.arange(len(MOLS)))
    for row, smi in zip(x, MOLS):
        fp = AllChem.GetHashedMorganFingerprint(Chem.MolFromSmiles(smi), 2, nBits=512)
        reference = np.zeros(512)
        for bit, count in fp.GetNonzeroElements().items():
            reference[bit] = count
        assert row.tolist() == reference.tolist()
    assert x.max() > 1  # counts, not bits


def test_canonical_smiles_is_rdkits():
    assert canonical_smiles("OCC") == canonical_smiles("C(O)C") == "CCO"
    with pytest.raises(InvalidSmilesError, match="index 0"):
        canonical_smiles("C1CC")


@pytest.mark.parametrize("position", [0, 2, 5])
def test_invalid_smiles_anywhere_are_skipped_with_a_count(position, caplog):
    smiles = list(MOLS)
    smiles.insert(position, "not-a-smiles")
    with caplog.at_level(logging.WARNING):
        table = featurize(smiles, "ecfp", cache=False, where="tiny")
    assert table.num_invalid == 1 and len(table) == len(MOLS)
    assert position not in table.kept.tolist()
    assert "skipped 1 of 6 invalid SMILES" in caplog.text
    reference = featurize(MOLS, "ecfp", cache=False).features.take(torch.arange(len(MOLS)))
    assert torch.equal(table.features.take(torch.arange(len(MOLS))), reference)


def test_strict_parsing_names_the_invalid_index():
    with pytest.raises(InvalidSmilesError, match="query index 3"):
        parse_smiles(["CCO", "CC", "CCC", "C1CC", "CCCC"], strict=True, where="query")
    parsed = parse_smiles(["", "CCO", "xyz"])
    assert parsed.invalid == [0, 2] and parsed.canonical == ["CCO"]


def test_cache_is_reused_and_keyed_by_settings(fresh_cache, monkeypatch):
    first = featurize(MOLS, "ecfp", where="a").features.take(torch.arange(5))
    files = sorted(p.name for p in (fresh_cache / "molecules").iterdir())
    assert len(files) == 2  # the parse and the fingerprint entries

    def fail(self, mols):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(ECFP, "compute", fail)
    assert torch.equal(featurize(MOLS, "ecfp").features.take(torch.arange(5)), first)
    with pytest.raises(AssertionError):  # other settings are another entry
        featurize(MOLS, ECFP(radius=3))


def test_failed_featurisation_leaves_nothing_in_the_cache(fresh_cache, monkeypatch):
    calls = []

    def explode(self, mols):
        calls.append(len(mols))
        raise RuntimeError("boom in the middle")

    monkeypatch.setattr(MolGraphs, "compute", explode)
    with pytest.raises(RuntimeError, match="boom"):
        featurize(MOLS, "ecfp+graph")
    names = [p.name for p in (fresh_cache / "molecules").iterdir()]
    assert calls and len(names) == 2  # parse + ecfp finished; no graph entry and no temporary file
    assert not any(n.endswith(".tmp") or n.startswith(".") for n in names)


def test_damaged_cache_entry_is_rebuilt(fresh_cache):
    first = featurize(MOLS, "ecfp").features.take(torch.arange(5))
    for path in (fresh_cache / "molecules").iterdir():
        path.write_bytes(b"garbage")
    assert torch.equal(featurize(MOLS, "ecfp").features.take(torch.arange(5)), first)


def test_descriptors_standardised_with_training_statistics():
    desc = RDKitDescriptors(["MolWt", "NumHAcceptors", "TPSA"])
    table = featurize(MOLS, desc, cache=False)
    raw = table.features.raw(torch.arange(5))
    assert raw[0, 0] == pytest.approx(46.069, abs=1e-2)  # ethanol's molecular weight
    train = torch.tensor([0, 1, 2])
    table.features.transform = Standardizer.fit(raw[train])
    z = table.features.take(torch.arange(5))
    assert torch.allclose(z[train].mean(0), torch.zeros(3), atol=1e-5)
    expected = (raw[3:] - raw[train].mean(0)) / raw[train].std(0, unbiased=False)
    assert torch.allclose(z[3:], expected.clamp(-10, 10), atol=1e-4)


def test_standardizer_handles_constant_and_missing_columns():
    x = torch.tensor([[1.0, 5.0, float("nan")], [3.0, 5.0, 2.0]])
    s = Standardizer.fit(x)
    z = s(torch.tensor([[2.0, 5.0, float("nan")]]))
    assert z.tolist() == [[0.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="training values"):
        Standardizer.fit(torch.empty(0, 3))


def test_graph_packing_matches_the_molecule():
    table = featurize(MOLS, "graph", cache=False)
    index = torch.arange(len(MOLS))
    x = table.features.take(index)  # [5, A * (F + A)]
    f = len(ATOM_VOCAB)
    a = packed_atoms(x.shape[1], f)
    assert a == max(Chem.MolFromSmiles(s).GetNumAtoms() for s in MOLS)
    g = x.view(len(MOLS), a, f + a)
    for i, smi in enumerate(MOLS):
        mol = Chem.MolFromSmiles(smi)
        n = mol.GetNumAtoms()
        assert (g[i, :n, 0] > 0).all() and (g[i, n:, :f] == 0).all()  # real atoms, then padding
        adj = g[i, :, f:]
        assert torch.equal(adj, adj.T)
        assert int((adj > 0).sum()) == 2 * mol.GetNumBonds()
        elements = [a.GetSymbol() for a in mol.GetAtoms()]
        if "O" in elements:
            assert g[i, elements.index("O"), 0] == 3  # "O" is element code 2, shifted by one
    aromatic = g[1, :6, f : f + 6]  # phenol ring: aromatic bonds, conjugated, in ring
    assert set(aromatic[aromatic > 0].long().tolist()) == {1 + 3 + 4 + 8}
    wider = pack_graphs(table.features.arrays, index, atoms=a + 3)
    assert wider.shape[1] == (a + 3) * (f + a + 3)
    with pytest.raises(ValueError, match="more than the packing width"):
        pack_graphs(table.features.arrays, index, atoms=2)


def test_featurizer_specs():
    fs = make_featurizers({"ecfp": {"radius": 3, "bits": 1024, "counts": True}, "graph": None})
    assert [f.name for f in fs] == ["ecfp6-1024-counts", "graph"]
    with pytest.raises(ValueError, match="unknown featurizer"):
        make_featurizers("ecfp+morgan")
    with pytest.raises(ValueError, match="graph featurizer"):
        featurize(MOLS, "graph+ecfp", cache=False)
    x = featurize(MOLS, "ecfp+graph", cache=False).features.take(torch.arange(2))
    assert x.shape[1] == 2048 + 7 * (len(ATOM_VOCAB) + 7)  # ethanol and phenol: packed to phenol's 7 atoms
