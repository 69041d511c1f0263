"""Import first in the fidelity scripts: no network, one thread everywhere, no progress bars.

The variables are read when torch, numba, datasets and the hub client load, so this module must be
imported before them; importing it is all it takes.
"""

import os

for name, value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "TQDM_DISABLE": "1",  # deepfocus and wechsel draw progress bars whatever their verbosity
}.items():
    os.environ[name] = value
