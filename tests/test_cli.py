"""The command line: init (flags and wizard), config get/set, status, and how errors reach the terminal.

Happy paths run in-process with CliRunner; error paths run ``python -m langbuild`` in a process of its
own, because only ``langbuild.cli.main`` turns exceptions into one red line and an exit code, and only a
process's real stderr shows every line a user would see. Those processes are forked from one server per
module that imported langbuild, torch and transformers once (tests/forked_cli.py): the same process for
the command, without ~2.5 s of imports each time.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import tomlkit
from typer.testing import CliRunner

from langbuild.cli import app
from langbuild.core.config import CONFIG_NAME, load_config
from langbuild.project.scaffold import template_dir
from tests import forked_cli

TEMPLATE_TEXT = (template_dir() / CONFIG_NAME).read_text(encoding="utf-8")
STEP_NAMES = ["corpus", "tokenizer", "select", "extend", "train", "eval", "report"]


def invoke(*args, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def langbuild(*args, cwd, env=None, check_fail=False):
    """Run ``python -m langbuild`` like a user in ``cwd``, stdin not a terminal: forked from this worker's
    server, or in a fresh interpreter when ``env`` sets a variable read at import time (COLUMNS, HF_HOME)."""
    cli = forked_cli.SESSION.get()
    if cli.takes(env):
        result = cli.run(args, cwd=cwd, env=env, timeout=60)
    else:
        result = subprocess.run([sys.executable, "-m", "langbuild", *map(str, args)], cwd=cwd, env={**cli.env, **env},
                                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    if check_fail:
        assert_one_line_error(result)
    return result


def assert_one_line_error(result, code=None):
    assert result.returncode != 0, result.stdout
    if code is not None:
        assert result.returncode == code, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    old, new = before.splitlines(), after.splitlines()
    assert len(old) == len(new)
    return [(a, b) for a, b in zip(old, new) if a != b]


@pytest.fixture
def project(tmp_path):
    """A fresh project whose corpus file exists (status fingerprints it)."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "data.txt").write_text("Moni, muli bwanji lero?\n", encoding="utf-8")
    result = invoke("init", root, "--language", "nya", "--corpus", "data.txt", "--yes")
    assert result.exit_code == 0, result.output
    return root


# --- init -----------------------------------------------------------------------------------------


def test_init_with_flags_writes_the_project(tmp_path):
    root = tmp_path / "nya-project"
    result = invoke("init", root, "--language", "nya", "--corpus", "data.txt", "--base-model", "X",
                    "--set", "train.max_steps=30", "--yes")
    assert result.exit_code == 0, result.output
    assert "created" in result.output
    text = (root / CONFIG_NAME).read_text(encoding="utf-8")
    assert changed_lines(TEMPLATE_TEXT, text) == [
        ('language = ""', 'language = "nya"'),
        ("paths = []", 'paths = ["data.txt"]'),
        ('candidates = ["smollm2-135m"]', 'candidates = ["X"]'),
        ("max_steps = 200", "max_steps = 30"),
    ]
    assert "# optimizer steps of continued pretraining" in text
    config = load_config(root / CONFIG_NAME)
    assert config.get("project.language") == "nya"
    assert config.get("corpus.paths") == ["data.txt"]
    assert config.get("select.candidates") == ["X"]
    assert config.get("train.max_steps") == 30
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "nya-project" in readme and "{{" not in readme
    assert (root / ".gitignore").read_text() == (template_dir() / "gitignore").read_text()


def test_init_repeatable_flags(tmp_path):
    root = tmp_path / "p"
    result = invoke("init", root, "-l", "nya", "--corpus", "a.txt", "--corpus", "more/*.jsonl",
                    "--base-model", "m1", "--base-model", "m2", "--set", "corpus.valid_paths=v.txt,w.txt", "-y")
    assert result.exit_code == 0, result.output
    config = load_config(root / CONFIG_NAME)
    assert config.get("corpus.paths") == ["a.txt", "more/*.jsonl"]
    assert config.get("select.candidates") == ["m1", "m2"]
    assert config.get("corpus.valid_paths") == ["v.txt", "w.txt"]


def test_init_without_language_in_a_script_names_the_flag(tmp_path):
    result = langbuild("init", "p", "--corpus", "data.txt", cwd=tmp_path)  # stdin is not a terminal
    assert_one_line_error(result, code=2)
    assert "--language" in result.stderr
    assert not (tmp_path / "p").exists()


def test_init_without_corpus_in_a_script_names_the_flag(tmp_path):
    result = langbuild("init", "p", "--language", "nya", "--yes", cwd=tmp_path)
    assert_one_line_error(result, code=2)
    assert "--corpus" in result.stderr


def test_init_with_an_unknown_setting_names_it(tmp_path):
    result = langbuild("init", "p", "--language", "nya", "--corpus", "d.txt", "--set", "nosuch.key=1", cwd=tmp_path)
    assert_one_line_error(result, code=2)
    assert "'nosuch.key'" in result.stderr
    assert not (tmp_path / "p").exists()  # nothing written


def test_init_with_a_badly_typed_setting(tmp_path):
    result = langbuild("init", "p", "-l", "nya", "--corpus", "d.txt", "--set", "train.max_steps=many", cwd=tmp_path)
    assert_one_line_error(result, code=2)
    assert "'train.max_steps' must be int" in result.stderr
    assert not (tmp_path / "p").exists()


def test_init_refuses_an_existing_project(project):
    before = (project / CONFIG_NAME).read_bytes()
    readme = (project / "README.md").read_bytes()
    result = langbuild("init", ".", "--language", "xho", "--corpus", "other.txt", "--yes", cwd=project)
    assert_one_line_error(result)
    assert "already holds a langbuild project" in result.stderr
    assert (project / CONFIG_NAME).read_bytes() == before
    assert (project / "README.md").read_bytes() == readme


def test_init_keeps_a_users_readme(tmp_path):
    (tmp_path / "README.md").write_text("mine\n")
    assert invoke("init", tmp_path, "-l", "nya", "--corpus", "d.txt", "-y").exit_code == 0
    assert (tmp_path / "README.md").read_text() == "mine\n"


def test_wizard_end_of_input_aborts_cleanly(tmp_path):
    result = langbuild("init", "p", "--interactive", cwd=tmp_path)  # stdin at EOF at the first question
    assert result.returncode == 130
    assert result.stderr.strip().splitlines()[-1] == "aborted"
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "p").exists()


# --- config get / set -----------------------------------------------------------------------------


def test_config_get(project):
    assert invoke("config", "get", "train.max_steps", "-C", project).output == "200\n"
    assert invoke("config", "get", "project.language", "-C", project).output == "nya\n"
    assert json.loads(invoke("config", "get", "corpus.paths", "-C", project).output) == ["data.txt"]
    assert invoke("config", "get", "project.trust_remote_code", "-C", project).output == "false\n"


def test_config_set_keeps_comments_and_types(project):
    before = (project / CONFIG_NAME).read_text(encoding="utf-8")
    result = invoke("config", "set", "train.max_steps", "12", "-C", project)
    assert result.exit_code == 0, result.output
    assert "train.max_steps = 12" in result.output
    after = (project / CONFIG_NAME).read_text(encoding="utf-8")
    assert changed_lines(before, after) == [("max_steps = 200", "max_steps = 12")]
    assert tomlkit.parse(after)["train"]["max_steps"] == 12  # an int, not the text "12"
    assert invoke("config", "get", "train.max_steps", "-C", project).output == "12\n"


def test_config_set_lists_and_text(project):
    assert invoke("config", "set", "corpus.paths", "a.txt,b/*.txt", "-C", project).exit_code == 0
    assert invoke("config", "set", "project.name", "[bold]Chichewa[/]", "-C", project).exit_code == 0
    config = load_config(project / CONFIG_NAME)
    assert config.get("corpus.paths") == ["a.txt", "b/*.txt"]
    assert config.get("project.name") == "[bold]Chichewa[/]"


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("train.max_steps", "abc", "'train.max_steps' must be int"),
        ("train.max_steps", "2.5", "'train.max_steps' must be int"),
        ("corpus.valid_fraction", "0.9", "'corpus.valid_fraction' must be at most 0.5"),
        ("tokenizer.model_type", "wordpiece", "must be one of unigram, bpe"),
        ("train.max_stepz", "3", "unknown setting 'train.max_stepz'"),
    ],
)
def test_config_set_bad_values_fail_cleanly_and_change_nothing(project, key, value, fragment):
    before = (project / CONFIG_NAME).read_bytes()
    result = langbuild("config", "set", key, value, cwd=project)
    assert_one_line_error(result, code=2)
    assert fragment in result.stderr
    assert (project / CONFIG_NAME).read_bytes() == before


def test_a_rule_between_settings_is_noted_by_config_set_and_refused_by_a_run_before_any_work(project):
    result = invoke("config", "set", "train.early_stopping", "3", "-C", project)
    assert result.exit_code == 0, result.output  # its pair (train.eval_every) may come next
    assert "note: train.early_stopping needs held-out checks" in result.output
    result = langbuild("run", cwd=project)
    assert_one_line_error(result)
    assert "train.early_stopping needs held-out checks: set train.eval_every too" in result.stderr
    assert not (project / "corpus").exists()  # refused before the first step, not at train
    assert invoke("config", "set", "train.eval_every", "10", "-C", project).output.count("note:") == 0


def test_init_refuses_settings_that_break_a_rule(tmp_path):
    result = langbuild("init", tmp_path / "p", "--yes", "--language", "nya", "--corpus", "data.txt",
                       "--set", "corpus.valid_field=book", cwd=tmp_path)
    assert_one_line_error(result)
    assert "corpus.valid_field is set but corpus.valid_values is empty" in result.stderr
    assert not (tmp_path / "p" / CONFIG_NAME).exists()


def test_config_set_negative_value_after_double_dash(project):
    before = (project / CONFIG_NAME).read_bytes()
    result = langbuild("config", "set", "train.max_steps", "-3", cwd=project)  # -3 reads as an option
    assert_one_line_error(result, code=2)
    assert "No such option: -3 (see: langbuild config set --help)" in result.stderr
    result = langbuild("config", "set", "--", "train.max_steps", "-3", cwd=project)
    assert_one_line_error(result, code=2)
    assert "'train.max_steps' must be at least 0" in result.stderr
    assert (project / CONFIG_NAME).read_bytes() == before


def test_config_outside_a_project(tmp_path):
    result = langbuild("config", "get", "train.max_steps", cwd=tmp_path)
    assert_one_line_error(result)
    assert "not a langbuild project" in result.stderr
    result = langbuild("config", "set", "train.max_steps", "3", cwd=tmp_path)
    assert_one_line_error(result)
    assert "no langbuild.toml" in result.stderr
    assert not (tmp_path / CONFIG_NAME).exists()


# --- status ---------------------------------------------------------------------------------------


def test_status_json_on_a_fresh_project(project):
    result = invoke("status", "--json", "-C", project)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [row["step"] for row in rows] == STEP_NAMES
    assert {row["state"] for row in rows} == {"pending"}
    assert all(row["finished"] is None and row["error"] is None for row in rows)


def test_status_table(project):
    result = invoke("status", "-C", project)
    assert result.exit_code == 0, result.output
    for name in STEP_NAMES:
        assert name in result.output
    assert "pending" in result.output


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("[project\nlanguage = 'nya'\n", "not valid TOML"),
        ("[training]\nmax_steps = 3\n", "unknown section [training]"),  # brackets survive the red line
        ("[project]\nlanguage = 'nya'\n[train]\nmax_steps = 'x'\n", "'train.max_steps' must be int"),
        ("[project]\nlanguage = 'nya'\n", "'corpus.paths' is required"),
    ],
)
def test_status_with_a_broken_langbuild_toml(project, content, fragment):
    (project / CONFIG_NAME).write_text(content, encoding="utf-8")
    result = langbuild("status", cwd=project)
    assert_one_line_error(result)
    assert fragment in result.stderr
    assert str(project / CONFIG_NAME) in result.stderr


def test_status_with_a_missing_corpus_file(project):
    (project / "data.txt").unlink()
    result = langbuild("status", "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    corpus = json.loads(result.stdout)[0]
    assert corpus["state"] == "pending" and "corpus path 'data.txt' does not exist" in corpus["error"]
    result = langbuild("run", cwd=project)
    assert_one_line_error(result)
    assert "corpus path 'data.txt' does not exist" in result.stderr


def _enough_text(project):
    lines = [f"Mwana wa nambala {i} anapita kumudzi kukaona agogo ake." for i in range(60)]
    (project / "data.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_run_with_an_unknown_model_is_one_line(project):
    _enough_text(project)
    result = langbuild("config", "set", "select.candidates", "no-such-model", cwd=project)
    assert result.returncode == 0, result.stderr
    result = langbuild("run", cwd=project)
    assert_one_line_error(result)
    assert "unknown model 'no-such-model'" in result.stderr


def test_run_with_an_unreachable_hub_model_is_one_line(project):
    _enough_text(project)
    langbuild("config", "set", "select.candidates", "someone/not-there", cwd=project)
    result = langbuild("run", cwd=project, env={"HF_HUB_OFFLINE": "1"})
    assert_one_line_error(result)
    assert "cannot get model 'someone/not-there'" in result.stderr


def test_run_with_an_empty_corpus_is_one_line(project):
    (project / "data.txt").write_text("\n\n  \n", encoding="utf-8")
    result = langbuild("run", cwd=project)
    assert_one_line_error(result)
    assert "holds no document" in result.stderr


def test_status_outside_a_project(tmp_path):
    result = langbuild("status", cwd=tmp_path)
    assert_one_line_error(result)
    assert "not a langbuild project" in result.stderr and "langbuild init" in result.stderr


def test_error_text_with_brackets_is_not_read_as_markup(project):
    (project / CONFIG_NAME).write_text("[project]\nlanguage = 'nya'\n[corpus]\npaths = ['data/[/x].txt']\n")
    status = langbuild("status", cwd=project)
    assert status.returncode == 0 and "data/[/x].txt" in status.stdout
    result = langbuild("run", cwd=project)
    assert_one_line_error(result)
    assert "data/[/x].txt" in result.stderr


# --- help, usage errors, debug --------------------------------------------------------------------


def test_help_exits_zero(tmp_path):
    result = langbuild("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ["init", "run", "status", "config", *STEP_NAMES]:
        assert command in result.stdout
    assert result.stderr == ""


def test_no_arguments_shows_help_without_an_error_line(tmp_path):
    result = langbuild(cwd=tmp_path)
    assert result.returncode == 2
    assert "init" in result.stdout + result.stderr and "status" in result.stdout + result.stderr
    assert "error" not in result.stderr.lower()


def test_unknown_flag_is_one_line_exit_2(tmp_path):
    result = langbuild("status", "--bogus", cwd=tmp_path)
    assert_one_line_error(result, code=2)
    assert "--bogus" in result.stderr and "langbuild status --help" in result.stderr


def test_a_badly_typed_step_flag_is_one_line_and_changes_nothing(project):
    before = (project / "langbuild.toml").read_text()
    result = langbuild("train", "-C", str(project), "--num-processes", "two", cwd=project)
    assert_one_line_error(result, code=2)
    assert "train.num_processes" in result.stderr
    assert (project / "langbuild.toml").read_text() == before


def test_missing_argument_is_one_line_exit_2(tmp_path):
    result = langbuild("config", "set", "train.max_steps", cwd=tmp_path)
    assert_one_line_error(result, code=2)
    assert "Missing argument" in result.stderr


def test_unknown_command_is_one_line_exit_2(tmp_path):
    result = langbuild("bogus", cwd=tmp_path)
    assert_one_line_error(result, code=2)
    assert "bogus" in result.stderr


def test_unknown_step_name_is_one_line(project):
    result = langbuild("run", "--until", "nosuchstep", cwd=project)
    assert_one_line_error(result, code=2)
    assert "unknown step 'nosuchstep'" in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    quiet = langbuild("status", cwd=tmp_path)
    assert "Traceback" not in quiet.stderr
    loud = langbuild("status", cwd=tmp_path, env={"LANGBUILD_DEBUG": "1"})
    assert loud.returncode == quiet.returncode != 0
    assert "Traceback" in loud.stderr
    assert "LangbuildError" in loud.stderr
    assert loud.stderr.strip().splitlines()[-1].startswith("error:")


def test_a_model_whose_tokenizer_outgrew_its_embeddings_is_one_line(project, tiny_models, tmp_path):
    import shutil

    from transformers import AutoTokenizer

    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_models["gpt2-bytelevel"], broken)
    tokenizer = AutoTokenizer.from_pretrained(broken)
    tokenizer.add_tokens([f"extra{i}" for i in range(10)])
    tokenizer.save_pretrained(broken)
    _enough_text(project)
    langbuild("config", "set", "select.candidates", str(broken), cwd=project)
    result = langbuild("select", cwd=project)
    assert_one_line_error(result)
    assert "embedding rows" in result.stderr


@pytest.mark.parametrize("damage", ["no-tokenizer", "corrupt-weights"])
def test_a_damaged_model_folder_is_one_line(project, tiny_models, tmp_path, damage):
    import shutil

    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_models["gpt2-bytelevel"], broken)
    if damage == "no-tokenizer":
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (broken / name).unlink()
    else:
        (broken / "model.safetensors").write_bytes(b"half-written")
    _enough_text(project)
    langbuild("config", "set", "select.candidates", str(broken), cwd=project)
    result = langbuild("select", cwd=project)
    assert_one_line_error(result)
    assert str(broken) in result.stderr
    assert ("no usable tokenizer" if damage == "no-tokenizer" else "cannot load the model") in result.stderr
