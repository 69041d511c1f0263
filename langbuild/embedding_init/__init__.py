"""Initialising the embedding rows of new tokens: one pure function over tensors per method.

Each method fills ``weight[new_ids]`` in place from the rows of the base vocabulary
(``weight[:old_rows]``) and returns nothing. Every method receives the same keyword arguments
(``pieces``, ``generator``, ``std``, ``base_tokens``, ``new_tokens``, ``token_space``) and uses those
it needs. The same function serves the input embeddings and an untied output head, each with its own
matrix.
"""

from __future__ import annotations

from collections.abc import Callable

from .focus import focus_init
from .mean import mean_init
from .multivariate import multivariate_init
from .random_normal import random_init
from .script import script_init
from .subword_mean import subword_mean_init
from .tokenadapt import tokenadapt_init
from .wechsel import wechsel_init

METHODS: dict[str, Callable] = {
    "random": random_init,
    "mean": mean_init,
    "multivariate": multivariate_init,
    "script": script_init,
    "subword-mean": subword_mean_init,
    "focus": focus_init,
    "tokenadapt": tokenadapt_init,
    "wechsel": wechsel_init,
}

__all__ = ["METHODS", "focus_init", "mean_init", "multivariate_init", "random_init", "script_init", "subword_mean_init",
           "tokenadapt_init", "wechsel_init"]
