"""langbuild's request scorer (shared cloze contexts, length-sorted rolling windows) gives lm-eval's HFLM's
numbers: the same tasks run through lm-eval with both, on tiny models of both position schemes."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from langbuild.evaluation import cloze, harness
from langbuild.evaluation.local_tasks import local_task, write_jsonl, write_task_yaml
from langbuild.evaluation.request_scorer import make_shared_prefix_lm
from langbuild.models.loading import load_model, load_tokenizer
from langbuild.models.scoring import bits_per_byte
from tests.tiny import chichewa_split


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    """A cloze task (4 choices per item) and a rolling task whose longest document spans several windows."""
    folder = tmp_path_factory.mktemp("tasks")
    held_out = chichewa_split()[1]
    items = cloze.build_items(held_out, seed=0, choices=4, max_items=30)
    write_jsonl(folder / "cloze.jsonl", (item.as_json() for item in items))
    documents = held_out[:20] + [" ".join(held_out[20:60])]  # the last one is longer than the tiny models' 256 positions
    write_jsonl(folder / "docs.jsonl", ({"text": d} for d in documents))
    made = [local_task(folder / "cloze.jsonl", name="t_cloze"), local_task(folder / "docs.jsonl", name="t_docs")]
    for task in made:
        write_task_yaml(task, folder / "yaml")
    return made, folder / "yaml"


def _hflm(model, tokenizer):
    from lm_eval.models.huggingface import HFLM

    with harness.quiet_lm_eval():
        return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4)


def _tokens_through(model, run) -> tuple[object, int]:
    """(run()'s result, the tokens the model's embedding layer saw meanwhile)."""
    seen = [0]
    hook = model.get_input_embeddings().register_forward_hook(lambda module, args, out: seen.__setitem__(0, seen[0] + args[0].numel()))
    try:
        return run(), seen[0]
    finally:
        hook.remove()


@pytest.mark.parametrize("family", ["llama-spm", "gpt2-bytelevel"])
def test_same_scores_as_hflm(tiny_models, tasks, family):
    local, folder = tasks
    model, tokenizer = load_model(tiny_models[family]), load_tokenizer(tiny_models[family])
    bits_per_byte(model, tokenizer, chichewa_split()[1][:5])  # as in the eval step, which wraps the model's forward
    ours, ours_tokens = _tokens_through(model, lambda: harness.run_local(
        make_shared_prefix_lm(model, tokenizer, 4), local, folder, None, bootstrap_samples=100))
    theirs, their_tokens = _tokens_through(model, lambda: harness.run_local(
        _hflm(model, tokenizer), local, folder, None, bootstrap_samples=100))
    assert ours_tokens < 0.8 * their_tokens  # each cloze context went through the model once, not four times
    assert ours["t_cloze"].per_item == theirs["t_cloze"].per_item  # every item's pick, exactly
    assert ours["t_cloze"].value == theirs["t_cloze"].value
    assert abs(ours["t_docs"].value - theirs["t_docs"].value) < 1e-6
    for (ll_ours, bytes_ours), (ll_theirs, bytes_theirs) in zip(ours["t_docs"].per_item, theirs["t_docs"].per_item):
        assert bytes_ours == bytes_theirs and abs(ll_ours - ll_theirs) < 1e-4 * max(1.0, abs(ll_theirs))


def test_requests_show_progress_as_plain_lines_off_a_terminal(tiny_models, tasks):
    local, folder = tasks
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=120)
    model, tokenizer = load_model(tiny_models["llama-spm"]), load_tokenizer(tiny_models["llama-spm"])
    harness.run_local(make_shared_prefix_lm(model, tokenizer, 4, console), local, folder, None, bootstrap_samples=100)
    lines = out.getvalue().splitlines()
    requests = [line for line in lines if line.strip().startswith("lm-eval requests:")]
    assert requests[-1].split(":")[1].split()[0] == "120/120"  # 30 items x 4 choices
    assert any(line.strip().startswith("lm-eval rolling windows:") for line in lines)
    assert all("\r" not in line for line in lines)


def test_progress_reaches_the_real_stdout_while_lm_eval_is_silenced(tiny_models, tasks, capsys):
    """A console made without a file (as the CLI's) follows sys.stdout, which lm-eval's chatter is captured
    from while requests run: the bars must still reach the stdout of when the model was made."""
    local, folder = tasks
    console = Console(force_terminal=False, width=120)
    model, tokenizer = load_model(tiny_models["llama-spm"]), load_tokenizer(tiny_models["llama-spm"])
    harness.run_local(harness.make_lm(model, tokenizer, 4, console), local, folder, None, bootstrap_samples=100)
    lines = capsys.readouterr().out.splitlines()
    assert any(line.strip().startswith("lm-eval requests: 120/120") for line in lines)
    assert any(line.strip().startswith("lm-eval rolling windows:") for line in lines)
