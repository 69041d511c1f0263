"""The report's samples: held-out prompts continued by each model, greedy and sampled, side by side.

The text shows what no score does (whether the output reads like the language at all); the share of
repeated word 3-grams next to it shows greedy decoding looping, which the text alone makes easy to miss
when it is long.
"""

from __future__ import annotations

from .data import model_labels
from .document import Block, Heading, Paragraph, Strong, Table, rich

LOWER = "lower is better"
LOOPING = 0.2  # greedy text with more repeated 3-grams than this, and clearly more than sampled text, loops


def _share(value) -> str:
    return "—" if value is None else f"{value:.0%}"


def repetition_table(samples: dict) -> Table | None:
    repetition = samples.get("repetition") or {}
    if not repetition:
        return None
    rows = tuple((label, _share(repetition[label].get("greedy")), _share(repetition[label].get("sampled")))
                 for label in model_labels(repetition))
    return Table(("model", f"greedy: repeated 3-grams ({LOWER})", f"sampled: repeated 3-grams ({LOWER})"), rows, ("l", "r", "r"))


def looping_line(samples: dict) -> str | None:
    """What the repetition says about the trained model's greedy text, in one sentence."""
    trained = (samples.get("repetition") or {}).get("trained") or {}
    greedy, sampled = trained.get("greedy"), trained.get("sampled")
    if greedy is None or sampled is None:
        return None
    if greedy >= LOOPING and greedy > sampled + 0.1:
        return (f"Greedy decoding of the trained model loops: {greedy:.0%} of its word 3-grams repeat an earlier one, "
                f"against {sampled:.0%} when sampling. Generate with sampling (e.g. top-p 0.9), not greedily.")
    return f"The trained model's greedy text repeats {greedy:.0%} of its word 3-grams (sampled: {sampled:.0%})."


def _prompt_blocks(number: int, prompt: dict) -> list[Block]:
    models = prompt.get("models") or {}
    rows = [(label, models[label].get("greedy", ""), _share(models[label].get("greedy_repetition")),
             models[label].get("sampled", ""), _share(models[label].get("sampled_repetition")))
            for label in model_labels(models)]
    if prompt.get("reference"):
        rows.append(("held-out text", prompt["reference"], "", "", ""))
    header = ("model", "greedy", "repeated 3-grams", "sampled", "repeated 3-grams")
    return [Paragraph(rich(Strong(f"Prompt {number}: "), f"{prompt.get('prompt', '')} …")),
            Table(header, tuple(rows), ("l", "l", "r", "l", "r"))]


def sample_blocks(evaluation: dict | None, level: int) -> list[Block]:
    """The samples section; nothing when eval wrote no samples (eval.sample_prompts = 0, or an older eval)."""
    samples = (evaluation or {}).get("samples") or {}
    prompts = samples.get("prompts") or []
    if not prompts:
        return []
    intro = (f"Each model continues the opening words of {len(prompts)} document(s) of the {samples.get('split', 'held-out')} "
             f"split, at most {samples.get('new_tokens', '?')} new tokens. Greedy is the model's single most likely text; "
             f"sampled draws with nucleus sampling (top-p {samples.get('top_p', 0.9)}) from seed {samples.get('seed', 0)}, "
             f"so a re-run writes the same text. Repeated 3-grams: the share of the continuation's word 3-grams that "
             f"repeat an earlier one ({LOWER}; near 100 % is a loop). The last row of each table is the true continuation.")
    blocks: list[Block] = [Heading(level, "Samples"), Paragraph(intro)]
    table = repetition_table(samples)
    blocks += [table] if table else []
    line = looping_line(samples)
    blocks += [Paragraph(line)] if line else []
    for number, prompt in enumerate(prompts, 1):
        blocks += _prompt_blocks(number, prompt)
    return blocks
