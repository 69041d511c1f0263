"""The embedding matrices of a loaded model: resizing them and filling new rows with a method of ``METHODS``."""

from __future__ import annotations

from . import METHODS


def embedding_matrices(model) -> tuple[list, bool]:
    """The input embeddings, and the output head when it is not tied to them; and whether it is tied."""
    input_weight = model.get_input_embeddings().weight
    output = model.get_output_embeddings()
    tied = output is None or output.weight is input_weight or output.weight.data_ptr() == input_weight.data_ptr()
    return ([input_weight] if tied else [input_weight, output.weight]), tied


def initialise_rows(model, method: str, new_ids: list[int], old_rows: int, pieces: list[list[int]], seed: int,
                    base_tokens: list[str] | None = None, new_tokens: list[str] | None = None,
                    token_space=None) -> bool:
    """Fill ``new_ids`` rows of the input embeddings (and of an untied output head) with ``method``.

    ``base_tokens`` (one string per base row) and ``new_tokens`` (one per new row) serve the methods
    that look at what a token spells (``script``); ``token_space`` the methods that mix base rows by
    an auxiliary space (``focus``, ``tokenadapt``, ``wechsel``). Each matrix mixes its own rows."""
    import torch

    init = METHODS[method]
    std = getattr(model.config, "initializer_range", 0.02)
    matrices, tied = embedding_matrices(model)
    with torch.no_grad():
        for offset, weight in enumerate(matrices):
            generator = torch.Generator().manual_seed(seed + offset)
            init(weight.data, new_ids, old_rows, pieces=pieces, generator=generator, std=std,
                 base_tokens=base_tokens or [], new_tokens=new_tokens or [], token_space=token_space)
    return tied


def resize_embeddings(model, rows: int, multiple: int) -> int:
    """Resize to ``rows`` rounded up to ``multiple`` (matrix shapes that tile well run faster)."""
    model.resize_token_embeddings(rows, pad_to_multiple_of=multiple if multiple > 1 else None, mean_resizing=False)
    return model.get_input_embeddings().weight.shape[0]


def fill_padding(model, first: int, old_rows: int) -> None:
    """Rows past the vocabulary are never input; as outputs they start at the mean, like new tokens."""
    rows = model.get_input_embeddings().weight.shape[0]
    if rows > first:
        initialise_rows(model, "mean", list(range(first, rows)), old_rows, [], 0)


def initialise_replacement(model, method, old_rows, trained_rows, size, pieces, shared, base_tokens, target_tokens,
                           token_space, seed) -> bool:
    """Rows [base | target] in one matrix (so initialisers see the base rows as usual), shared tokens
    copied from their base row, then the target rows moved to the front."""
    import torch

    resize_embeddings(model, old_rows + size, 1)
    new_ids = [old_rows + i for i in range(size)]
    tied = initialise_rows(model, method, new_ids, trained_rows, pieces, seed, base_tokens, target_tokens, token_space)
    matrices, _ = embedding_matrices(model)
    with torch.no_grad():
        for weight in matrices:
            if shared:
                targets = torch.tensor([old_rows + idx for idx in shared], device=weight.device)
                weight[targets] = weight[torch.tensor(list(shared.values()), device=weight.device)]
            weight[:size] = weight[old_rows:].clone()
    return tied
