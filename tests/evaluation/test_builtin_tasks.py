import json

import pytest
from rich.console import Console

from langbuild.core.errors import LangbuildError
from langbuild.evaluation import builtin_tasks as bt

# A slice of lm-eval's index: real names plus look-alikes that must not be picked.
NAMES = [
    "belebele", "belebele_nya_Latn", "belebele_nya_prompt_1", "belebele_zsm_Latn", "belebele_swh_Latn", "belebele_eng_Latn",
    "belebele_zho_Hans", "belebele_zho_Hant", "belebele_arb_Arab",
    "global_mmlu_full_ny", "global_mmlu_full_ny_anatomy", "global_mmlu_full_ms", "global_mmlu_sw", "global_mmlu_sw_stem",
    "global_mmlu_full_sw", "global_mmlu_en",
    "sib", "sib_nya_prompt_1", "sib_nya_prompt_2", "masakhaner_ny_prompt_1", "afrixnli_swa_prompt_1", "xlsum_swahili_prompt_1",
    "include_base_44_malay", "include_base_44_malay_few_shot_en",
    "xnli", "xnli_sw", "xnli_en", "xcopa_qu", "xwinograd_jp", "mmmlu_sw_ke", "mmmlu_sw_ke_anatomy",
    "global_piqa_parallel_cloze_zsm_latn", "global_piqa_parallel_cloze_por_latn_braz",
    "flores_eng_Latn-nya_Latn_prompt_1", "flores_eng_Latn-nya_Latn_prompt_2", "flores_nya_Latn-eng_Latn_prompt_1",
    "AraDiCE_boolq_msa", "arabic_leaderboard_alghafa_meta_ar_msa", "cmmlu", "mlqa_sw_sw", "mlqa_sw_en",
]


def _names(code):
    return [task.name for task in bt.tasks_for_language(code, NAMES)]


def test_tasks_for_chichewa_on_a_fixed_list():
    tasks = bt.tasks_for_language("nya", NAMES)
    names = [task.name for task in tasks]
    assert names[0] == "belebele_nya_Latn"
    assert names == ["belebele_nya_Latn", "global_mmlu_full_ny", "sib_nya_prompt_1", "masakhaner_ny_prompt_1",
                     "flores_eng_Latn-nya_Latn_prompt_1", "flores_nya_Latn-eng_Latn_prompt_1"]
    by_name = {task.name: task for task in tasks}
    assert by_name["belebele_nya_Latn"].kind == "multiple_choice"
    assert by_name["sib_nya_prompt_1"].family == "afrobench"
    assert by_name["flores_eng_Latn-nya_Latn_prompt_1"].kind == "generation"
    assert all(task.description for task in tasks)
    assert _names("ny") == _names("nya_Latn") == names


def test_tasks_for_malay_use_every_code_and_skip_look_alikes():
    names = _names("ms")
    assert names[0] == "belebele_zsm_Latn"
    assert {"global_mmlu_full_ms", "include_base_44_malay", "global_piqa_parallel_cloze_zsm_latn"} <= set(names)
    assert not any("msa" in name for name in names)  # "msa" in AraDiCE is Modern Standard Arabic
    assert "include_base_44_malay_few_shot_en" not in names


def test_tasks_for_swahili_groups_not_subjects():
    names = _names("sw")
    assert names[:3] == ["belebele_swh_Latn", "global_mmlu_sw", "global_mmlu_full_sw"]
    assert {"afrixnli_swa_prompt_1", "xlsum_swahili_prompt_1", "xnli_sw", "mmmlu_sw_ke", "mlqa_sw_sw"} <= set(names)
    assert not {"global_mmlu_sw_stem", "mmmlu_sw_ke_anatomy", "mlqa_sw_en"} & set(names)


def test_tasks_for_other_languages():
    assert _names("quy") == ["xcopa_qu"]
    assert "xwinograd_jp" in _names("ja")
    assert _names("zh_Hant")[0] == "belebele_zho_Hant" and "cmmlu" in _names("zh")
    assert "global_piqa_parallel_cloze_por_latn_braz" in _names("pt")
    assert not any("nya" in name or "_ny" in name for name in _names("en"))
    assert _names("bbj") == []


def test_unknown_language_raises():
    with pytest.raises(LangbuildError):
        bt.tasks_for_language("klingon", NAMES)


def test_check_task_names_suggests_close_names():
    known, unknown = bt.check_task_names(["xnli_sw", "belebele_nya_latn", "global_mmlu_ny", "zzz_nothing_like_it"], NAMES)
    assert known == ["xnli_sw"]
    reasons = dict(unknown)
    assert "did you mean 'belebele_nya_Latn'?" in reasons["belebele_nya_latn"]
    assert "did you mean 'global_mmlu_full_ny'?" in reasons["global_mmlu_ny"]
    assert "--list-tasks" in reasons["zzz_nothing_like_it"]
    assert all("\n" not in reason for reason in reasons.values())


def test_render_task_table():
    table = bt.render_task_table("nya", bt.tasks_for_language("nya", NAMES))
    console = Console(record=True, width=200)
    console.print(table)
    text = console.export_text()
    for expected in ("Chichewa", "nya_Latn", "belebele_nya_Latn", "afrobench", "multiple choice", "what it measures"):
        assert expected in text
    assert bt.render_task_table("not-a-code", []).title == "lm-eval tasks for not-a-code"


# ---------------------------------------------------------------- the cached index


@pytest.fixture
def fake_index(monkeypatch, tmp_path):
    """known_task_names() against a temporary cache and a stand-in for lm-eval's 12-second index build."""
    monkeypatch.setenv("LANGBUILD_CACHE", str(tmp_path))
    monkeypatch.setattr(bt, "_memo", {})
    builds = []

    def build():
        builds.append(1)
        return ["xnli_sw", "belebele_nya_Latn"]

    monkeypatch.setattr(bt, "_build_index", build)
    return builds


def test_index_cache_roundtrip(fake_index, tmp_path, monkeypatch):
    assert bt.known_task_names() == {"xnli_sw", "belebele_nya_Latn"}
    path = bt.index_cache_file()
    assert path.parent.parent == tmp_path and bt.lm_eval_version() in path.name
    assert json.loads(path.read_text())["lm_eval_version"] == bt.lm_eval_version()
    monkeypatch.setattr(bt, "_memo", {})  # a new process: reads the file, builds nothing
    assert bt.known_task_names() == {"xnli_sw", "belebele_nya_Latn"}
    assert len(fake_index) == 1


@pytest.mark.parametrize("content", ["{not json", "[]", '{"lm_eval_version": "0.0.1", "names": ["x"]}',
                                     '{"lm_eval_version": "VERSION", "names": []}', '{"lm_eval_version": "VERSION", "names": [1]}'])
def test_corrupt_or_stale_cache_is_rebuilt(fake_index, content):
    path = bt.index_cache_file()
    path.parent.mkdir(parents=True)
    path.write_text(content.replace("VERSION", bt.lm_eval_version()))
    assert bt.known_task_names() == {"xnli_sw", "belebele_nya_Latn"}
    assert len(fake_index) == 1
    assert json.loads(path.read_text())["names"] == ["belebele_nya_Latn", "xnli_sw"]


def test_real_lm_eval_index():
    """lm-eval's own index (built once per lm-eval version, about 15 s; then read from the cache)."""
    names = bt.known_task_names()
    assert len(names) > 10000
    nya = {task.name: task for task in bt.tasks_for_language("nya")}
    assert "belebele_nya_Latn" in nya and "global_mmlu_full_ny" in nya
    assert any(task.family == "afrobench" for task in nya.values())
    ms = [task.name for task in bt.tasks_for_language("ms")]
    assert ms[0] == "belebele_zsm_Latn" and "global_mmlu_full_ms" in ms  # lm-eval 0.4.13 has no global_mmlu_ms
    assert not any(name.startswith("belebele_nya") for name in (task.name for task in bt.tasks_for_language("en")))
    for suites in bt.NATIVE_SUITES.values():  # the hand-kept table still matches lm-eval
        assert {name for name, _, _ in suites} <= names
    _, unknown = bt.check_task_names(["belebele_nya_latn"])
    assert "'belebele_nya_Latn'" in unknown[0][1]


def test_a_single_builtin_task_is_found_in_its_own_folder():
    """The eval step's task manager for one built-in task indexes that task's folder, not all of lm-eval."""
    from lm_eval.tasks import TaskManager

    folder = bt.builtin_task_folder("belebele_nya_Latn")
    assert folder is not None and folder.name == "belebele"
    assert "belebele_nya_Latn" in TaskManager(include_path=str(folder), include_defaults=False).all_tasks
    assert bt.builtin_task_folder("belebele") is None  # a group gathers tasks: the whole index finds it
    assert bt.builtin_task_folder("no_such_task_xyz") is None
