"""Environment variables that change what langbuild does: the one place that says what "offline" means.

The command line's ``--offline`` switches on the variables the Hugging Face libraries read themselves;
code that has to explain a failure asks :func:`is_offline`. Both use the lists below, so a variable added
here is set by ``--offline`` and recognised everywhere.
"""

from __future__ import annotations

import os

# Read by huggingface_hub, datasets and transformers when they are first imported.
HUB_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
# Any of these set means the user asked for no network; LANGBUILD_OFFLINE is langbuild's own switch.
OFFLINE_VARIABLES = (*HUB_OFFLINE_VARIABLES, "LANGBUILD_OFFLINE")


def truthy(value: str | None) -> bool:
    """How the Hugging Face libraries read a switch: 1, true, yes or on, in any case."""
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def offline_variables_set() -> list[str]:
    """The offline switches that are on, in :data:`OFFLINE_VARIABLES` order."""
    return [name for name in OFFLINE_VARIABLES if truthy(os.environ.get(name))]


def is_offline() -> bool:
    """True when the user asked for no network through any of :data:`OFFLINE_VARIABLES`."""
    return bool(offline_variables_set())


def go_offline() -> None:
    """Switch every library to offline mode; must run before they are imported, as they read it only then."""
    for name in HUB_OFFLINE_VARIABLES:
        os.environ[name] = "1"
