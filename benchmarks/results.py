"""Writing one named section of benchmarks/RESULTS.md, replacing the previous version of it."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def scratch_dir(prefix: str) -> Path:
    """A fresh temporary folder, removed when the benchmark exits (LANGBUILD_KEEP_SCRATCH=1 keeps it).

    Why: benchmarks copy and train whole projects (up to 4 GB each); left behind, a few runs filled the
    disk that CI installs onto.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    if not os.environ.get("LANGBUILD_KEEP_SCRATCH"):
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def record_section(name: str, title: str, body: str) -> None:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = f"{begin}\n## {title}\n\n{body}\n{end}"
    if begin in current:
        head, rest = current.split(begin, 1)
        current = head + block + rest.split(end, 1)[1]
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(current)


def cpu_description() -> str:
    """The CPU model and the flags that decide bf16 speed (AMX, AVX512-bf16), for every timing table."""
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    shown = [f for f in ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f") if f in flags]
    return f"{model}; bf16-relevant flags: {', '.join(shown) or 'none'}" + ("" if "amx_bf16" in flags else " (no AMX)")


def commit_description() -> str:
    """The commit the measured code is at, so a recorded figure can be dated to it; "+ changes" when the
    working tree differs from it."""
    def git(*args: str) -> str:
        result = subprocess.run(["git", "-C", str(RESULTS.parent), *args], capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "--short=7", "HEAD") or "unknown commit"
    return commit + (" + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")
