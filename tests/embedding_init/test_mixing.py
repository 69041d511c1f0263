"""The initialisers that mix base rows through an auxiliary space: FOCUS, TokenAdapt, and the
corpus-trained token vectors behind them."""

from __future__ import annotations

import torch

from langbuild.embedding_init import METHODS, focus_init, tokenadapt_init
from langbuild.embedding_init.focus import sparsemax
from langbuild.embedding_init.token_space import TokenSpace
from langbuild.embedding_init.token_vectors import VectorSettings, train_token_vectors


def _reference_sparsemax(z: torch.Tensor) -> torch.Tensor:
    """Sparsemax of one vector by its definition: the Euclidean projection onto the simplex, by bisection on tau."""
    low, high = float(z.min()) - 1, float(z.max())
    for _ in range(200):
        tau = (low + high) / 2
        if (z - tau).clamp_min(0).sum() > 1:
            low = tau
        else:
            high = tau
    return (z - (low + high) / 2).clamp_min(0)


def test_sparsemax_is_the_projection_onto_the_simplex():
    scores = torch.randn((50, 40), generator=torch.Generator().manual_seed(0)) * 3
    weights, columns, width = sparsemax(scores)
    dense = torch.zeros_like(scores).scatter(1, columns, weights)
    assert torch.allclose(dense.sum(1), torch.ones(50), atol=1e-5)
    for row in range(50):
        assert torch.allclose(dense[row], _reference_sparsemax(scores[row]), atol=1e-4)
    assert width < 40  # sparse: most rows give most columns exactly zero


def _space(base: torch.Tensor, new: torch.Tensor, base_known=None, new_known=None) -> TokenSpace:
    return TokenSpace(base, torch.ones(len(base), dtype=torch.bool) if base_known is None else base_known,
                      new, torch.ones(len(new), dtype=torch.bool) if new_known is None else new_known)


def test_focus_copies_the_row_of_a_token_with_the_same_auxiliary_vector_and_mixes_between_neighbours():
    generator = torch.Generator().manual_seed(1)
    rows = torch.randn((20, 8), generator=generator)
    aux = torch.eye(20)  # orthogonal auxiliary vectors: each base token is its own direction
    between = (aux[3] + aux[7]) / 2
    new = torch.stack([aux[5], between])
    weight = torch.cat([rows, torch.zeros(2, 8)])
    focus_init(weight, [20, 21], 20, token_space=_space(aux, new), pieces=[[0], [0]])
    assert torch.allclose(weight[20], rows[5], atol=1e-5)
    assert torch.allclose(weight[21], (rows[3] + rows[7]) / 2, atol=1e-5)  # sparsemax splits a tie evenly
    assert torch.equal(weight[:20], rows)


def test_focus_mixes_only_base_tokens_with_vectors_and_falls_back_to_pieces():
    rows = torch.randn((10, 4), generator=torch.Generator().manual_seed(2))
    rows[4] = 1e6  # a row that must get no weight
    aux = torch.randn((10, 5), generator=torch.Generator().manual_seed(3))
    base_known = torch.ones(10, dtype=torch.bool)
    base_known[4] = False  # never seen in the target corpus: cannot be an anchor
    new = torch.stack([aux[4] + 0.3 * aux[2], aux[1]])
    weight = torch.cat([rows, torch.zeros(2, 4)])
    focus_init(weight, [10, 11], 10, token_space=_space(aux, new, base_known, torch.tensor([True, False])),
               pieces=[[0], [8, 9]])
    anchors = [i for i in range(10) if i != 4]
    cosine = torch.nn.functional.cosine_similarity(new[0].unsqueeze(0), aux[anchors])
    assert torch.allclose(weight[10], _reference_sparsemax(cosine) @ rows[anchors], atol=1e-4)
    assert torch.allclose(weight[11], (rows[8] + rows[9]) / 2, atol=1e-6)


def test_tokenadapt_blends_the_local_and_the_global_estimate():
    rows = torch.randn((12, 6), generator=torch.Generator().manual_seed(3))
    aux = torch.eye(12)
    new = aux[9].unsqueeze(0)  # its nearest base token is 9; its pieces are 1 and 2, unrelated in the space
    weight = torch.cat([rows, torch.zeros(1, 6)])
    base_tokens = [f"t{i}" for i in range(12)]
    tokenadapt_init(weight, [12], 12, token_space=_space(aux, new), pieces=[[1, 2]], base_tokens=base_tokens)
    local = (rows[1] + rows[2]) / 2  # equal lengths, equal (zero) similarity
    softmax = torch.softmax(torch.tensor([1.0] + [0.0] * 9) / 0.1, 0)
    top = torch.cat([rows[9:10], rows[torch.tensor([i for i in range(12) if i != 9][:9])]])
    expected = 0.7 * local + 0.3 * (softmax.unsqueeze(1) * top).sum(0)
    assert torch.allclose(weight[12], expected, atol=1e-4)


def test_mixing_methods_need_their_space():
    weight = torch.zeros(3, 2)
    for method in ("focus", "tokenadapt", "wechsel"):
        try:
            METHODS[method](weight, [2], 2, pieces=[[0]])
        except ValueError as err:
            assert method in str(err)
        else:
            raise AssertionError(f"{method} ran without a token space")


def _toy_corpus(seed: int) -> list[list[int]]:
    """Two topics that never share a sentence: ids 0-9 co-occur, ids 10-19 co-occur."""
    generator = torch.Generator().manual_seed(seed)
    sequences = []
    for index in range(600):
        offset = 0 if index % 2 else 10
        sequences.append((torch.randint(0, 10, (12,), generator=generator) + offset).tolist())
    return sequences


def test_token_vectors_place_co_occurring_tokens_together_and_are_seeded():
    settings = VectorSettings(dim=16, epochs=10, batch_size=512, subsample=1.0, min_count=5)
    vectors, known, spelled = train_token_vectors(_toy_corpus(0), 25, seed=0, settings=settings)
    again, _, _ = train_token_vectors(_toy_corpus(0), 25, seed=0, settings=settings)
    assert torch.equal(vectors, again)
    assert known[:20].all() and not known[20:].any() and not spelled.any()  # ids 20-24 never occur
    unit = vectors[:20] / vectors[:20].norm(dim=1, keepdim=True)
    similarity = unit @ unit.T
    same = torch.cat([similarity[:10, :10].flatten(), similarity[10:, 10:].flatten()])
    across = similarity[:10, 10:].flatten()
    assert same.mean() > 0.5 > across.mean() + 0.5


def test_token_vectors_from_spelling_place_rare_tokens_by_their_n_grams():
    settings = VectorSettings(dim=16, epochs=10, batch_size=512, subsample=1.0, min_count=5)
    strings = [f"alpha{i}" for i in range(10)] + [f"zulu{i}" for i in range(10)] + ["alpha", "zulu", "", "", ""]
    vectors, trained, spelled = train_token_vectors(_toy_corpus(0), 25, seed=0, settings=settings, strings=strings)
    assert spelled[20] and spelled[21] and not spelled[22:].any() and not trained[20:].any()
    unit = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-8)
    # Never seen in the corpus, "alpha" sits with the alpha tokens and "zulu" with the zulu ones.
    assert (unit[20] @ unit[:10].T).mean() > (unit[20] @ unit[10:20].T).mean()
    assert (unit[21] @ unit[10:20].T).mean() > (unit[21] @ unit[:10].T).mean()
