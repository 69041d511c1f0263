"""Initialising the embedding rows of new tokens: one pure function over tensors per method.

Each method fills ``weight[new_ids]`` in place from the rows of the base vocabulary
(``weight[:old_rows]``) and returns nothing. Every method receives the same keyword arguments
(``pieces``, ``generator``, ``std``, ``base_tokens``, ``new_tokens``) and uses those it needs. The
same function serves the input embeddings and an untied output head, each with its own matrix.
"""

from __future__ import annotations

from collections.abc import Callable

from .mean import mean_init
from .multivariate import multivariate_init
from .random_normal import random_init
from .script import script_init
from .subword_mean import subword_mean_init

METHODS: dict[str, Callable] = {
    "random": random_init,
    "mean": mean_init,
    "multivariate": multivariate_init,
    "script": script_init,
    "subword-mean": subword_mean_init,
}

__all__ = ["METHODS", "mean_init", "multivariate_init", "random_init", "script_init", "subword_mean_init"]
