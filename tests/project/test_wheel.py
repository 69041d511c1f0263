"""langbuild installed from a built wheel, the way users get it from a registry, with no source tree in sight.

The wheel is built from a copy of the tracked sources (so the build leaves nothing in the repository),
installed with --no-deps into a fresh virtual environment, and run from a folder outside the repository.
The new environment borrows langbuild's dependencies through a .pth line naming this interpreter's
site-packages: a plain path line only appends that folder to sys.path, it does not run the .pth files
there, so an editable install's import hook in it stays off and ``import langbuild`` can only find the
wheel — which the test checks rather than assumes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

# Not marked slow: building, installing and running it takes a few seconds on 2 cores.
REPO = Path(__file__).resolve().parents[2]
# What a build needs; everything else (tests, benchmarks, examples) stays out of the copy.
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "langbuild", "templates")


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def _build_wheel(tmp_path: Path, env: dict[str, str]) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, source / name)
    # No build isolation: the build uses this environment's setuptools instead of downloading one.
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(tmp_path / "dist"), str(source)], cwd=tmp_path, env=env)
    (wheel,) = (tmp_path / "dist").glob("langbuild-*.whl")
    return wheel


def test_the_built_wheel_installs_and_creates_a_project_without_the_source_tree(tmp_path):
    # The test run itself may have the worktree on PYTHONPATH; nothing started here may inherit it.
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    wheel = _build_wheel(tmp_path, env)
    names = zipfile.ZipFile(wheel).namelist()
    for template in sorted((REPO / "templates").rglob("*")):
        if template.is_file():
            assert f"langbuild/templates/{template.relative_to(REPO / 'templates').as_posix()}" in names

    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(target)  # without pip: this interpreter's pip installs into it
    python = target / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=tmp_path, env=env).stdout.strip())
    (purelib / "langbuild_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
         cwd=tmp_path, env=env)

    outside = tmp_path / "elsewhere"  # a working folder outside the repository
    outside.mkdir()
    probe = ("import json, langbuild\n"
             "from langbuild.core.resources import templates_dir\n"
             "print(json.dumps({'package': langbuild.__file__, 'templates': str(templates_dir())}))\n")
    found = json.loads(_run([str(python), "-c", probe], cwd=outside, env=env).stdout)
    installed = purelib / "langbuild"
    assert Path(found["package"]).resolve() == (installed / "__init__.py").resolve(), found
    assert Path(found["templates"]).resolve() == (installed / "templates").resolve(), found

    (outside / "text.txt").write_text("Moni! Muli bwanji? Ndili bwino, zikomo kwambiri.\n" * 20, encoding="utf-8")
    langbuild = str(target / "bin" / "langbuild")  # the console script the wheel declares
    _run([langbuild, "init", "project", "--yes", "--language", "nya", "--corpus", str(outside / "text.txt")],
         cwd=outside, env=env)
    project = outside / "project"
    for name in ("langbuild.toml", "README.md", ".gitignore"):
        assert (project / name).is_file(), f"langbuild init did not write {name}"
    status = json.loads(_run([langbuild, "status", "-C", "project", "--json"], cwd=outside, env=env).stdout)
    assert status and {row["state"] for row in status} == {"pending"}

    # The lm-eval templates ship too: a local task renders from the installed copy.
    (outside / "quiz.jsonl").write_text(json.dumps({"query": "2+2=", "choices": ["3", "4"], "gold": 1}) + "\n")
    render = ("from pathlib import Path\n"
              "from langbuild.evaluation.local_tasks import local_task, write_task_yaml\n"
              "print(write_task_yaml(local_task(Path('quiz.jsonl')), Path('tasks')).read_text())\n")
    assert "quiz" in _run([str(python), "-c", render], cwd=outside, env=env).stdout
