"""The model card: the README.md a Hugging Face model folder needs, rendered from the step outputs.

It says what the model is, what it was trained on, how, how well it does (with directions and 95 %
intervals) and what it must not be trusted for. The limitations are written from the project's own
numbers (corpus size, forgetting) because a generic disclaimer is the part readers skip.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import __version__
from ..text.words import first_words
from .data import Outputs, load_outputs, tasks
from .document import Block, Bullets, Code, CodeBlock, Heading, Paragraph, Strong, rich, to_markdown
from .sections import LOWER, benchmark_blocks, forgetting_line, generation_blocks, held_out_table, scored_split_line

TAGS = ["langbuild", "continued-pretraining", "vocabulary-extension"]
# Packaged models are GGUF conversions of these hub releases (see langbuild.models.loading.PACKAGED).
PACKAGED_HUB_IDS = {"smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct", "gemma3-270m": "google/gemma-3-270m"}
# License names as langbuild.models.loading records them -> Hugging Face license identifiers.
LICENSE_IDS = {"apache-2.0": "apache-2.0", "mit": "mit", "gemma terms of use": "gemma"}


@dataclass(frozen=True)
class BaseModel:
    name: str  # what the card shows
    hub_id: str  # the front matter's base_model
    license: str  # a Hugging Face license id, "other" when unknown
    license_note: str | None


def _front_matter_of(readme: Path) -> dict:
    """The YAML front matter of a model folder's README.md, or {} (absent, unreadable or not YAML)."""
    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    try:
        meta = yaml.safe_load(text[3:end]) if end > 0 else None
    except yaml.YAMLError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _is_hub_model(chosen: str, folder: str | None) -> bool:
    """A hub id resolves into the Hugging Face cache (``models--owner--name``); a local folder resolves to itself."""
    parts = chosen.split("/")
    shaped = len(parts) == 2 and all(parts) and not chosen.startswith((".", "/", "~"))
    return shaped and (folder is None or "models--" in folder)


def base_model_info(selection: dict | None) -> BaseModel:
    """Where the base model came from and its license: the packaged table, the folder's README, or unknown."""
    chosen = str((selection or {}).get("chosen") or "unknown")
    folder = (selection or {}).get("chosen_path")
    if chosen in PACKAGED_HUB_IDS:
        from ..models.loading import PACKAGED

        shown, hub_id = chosen, PACKAGED_HUB_IDS[chosen]
        license_id = LICENSE_IDS.get(PACKAGED[chosen].license.lower()) if chosen in PACKAGED else None
    else:
        meta = _front_matter_of(Path(folder or chosen) / "README.md")
        license_id = meta.get("license") if isinstance(meta.get("license"), str) else None
        # A local folder is named by its folder name, never by a path on this machine.
        shown = hub_id = chosen if _is_hub_model(chosen, folder) else (Path(folder or chosen).name or chosen)
    if license_id and license_id != "other":
        return BaseModel(shown, hub_id, license_id, None)
    note = (f"langbuild does not know the license of the base model {shown}: this model is a derivative of it and "
            "inherits its terms; check them before sharing and set the license field of this card.")
    return BaseModel(shown, hub_id, "other", note)


# ---------------------------------------------------------------- front matter


def _model_index(name: str, language: str, evaluation: dict | None) -> list[dict] | None:
    """Hugging Face model-index results: the trained model's score on every task and on held-out text."""
    results = []
    target = ((evaluation or {}).get("target") or {}).get("bits_per_byte") or {}
    if target.get("trained") is not None:
        results.append({"task": {"type": "text-generation", "name": "Language modeling"},
                        "dataset": {"name": f"held-out {language} text", "type": "langbuild-held-out"},
                        "metrics": [{"type": "bits_per_byte", "value": round(float(target["trained"]), 4),
                                     "name": f"bits per byte ({LOWER})"}]})
    for task_name, task in tasks(evaluation).items():
        value = (task["scores"].get("trained") or {}).get("value")
        if value is None:
            continue
        metric = str(task.get("metric", "score"))
        results.append({"task": {"type": "text-generation"},
                        "dataset": {"name": task_name, "type": task_name},
                        "metrics": [{"type": metric, "value": round(float(value), 4),
                                     "name": f"{metric} ({task.get('direction', 'direction unknown')})"}]})
    return [{"name": name, "results": results}] if results else None


def front_matter(name: str, language: str, base: BaseModel, evaluation: dict | None) -> str:
    meta: dict = {"language": [language], "license": base.license, "base_model": base.hub_id,
                  "library_name": "transformers", "pipeline_tag": "text-generation", "tags": TAGS}
    index = _model_index(name, language, evaluation)
    if index:
        meta["model-index"] = index
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000) + "---\n"


# ---------------------------------------------------------------- sections


def _summary(name: str, language: str, base: BaseModel, outputs: Outputs) -> list[Block]:
    extend, train = outputs.extend or {}, outputs.train or {}
    lines = [rich("Language: ", Code(language)),
             rich("Base model: ", Strong(base.name), f" (license: {base.license})"),
             rich("Made with: langbuild ", __version__)]
    if extend:
        lines.insert(2, f"Vocabulary: {extend.get('vocab_size', {}).get('base', 0):,} → "
                        f"{extend.get('vocab_size', {}).get('extended', 0):,} tokens ({extend.get('mode', 'extend')}, "
                        f"{extend.get('added_tokens', 0):,} new, initialised by {extend.get('init', '?')})")
    if train:
        lines.insert(3, f"Continued pretraining: {train.get('steps', 0):,} steps, {train.get('tokens', 0):,} tokens")
    target = ((outputs.evaluation or {}).get("target") or {}).get("bits_per_byte") or {}
    headline = ""
    if target.get("base") and target.get("trained") is not None:
        ratio = (target["trained"] - target["base"]) / target["base"] * 100
        headline = (f" On held-out {language} text it needs {abs(ratio):.1f} % {'fewer' if ratio < 0 else 'more'} bits per byte "
                    f"than the base model ({target['base']:.4f} → {target['trained']:.4f}; {LOWER}).")
    vocabulary = ("its tokenizer replaced by one trained on" if outputs.extend and outputs.extend.get("mode") == "replace"
                  else "a vocabulary extended for")
    intro = (f"A causal language model for {language}: {base.name} with {vocabulary} {language} text and "
             f"continued pretraining on a {language} corpus, built with langbuild.{headline}")
    return [Heading(2, "Model summary"), Paragraph(intro), Bullets(tuple(lines))]


def _source_names(config) -> list[str]:
    """The corpus files as named in langbuild.toml, without this machine's directories."""
    names = []
    for entry in [entry for key in ("paths", "valid_paths", "test_paths") for entry in config.get(f"corpus.{key}") or []]:
        names.append(Path(entry).name if os.path.isabs(os.path.expanduser(entry)) else str(entry))
    return names


def _data(config, corpus: dict | None) -> list[Block]:
    if not corpus:
        return [Heading(2, "Data"), Paragraph("The corpus step has not run.")]
    train, valid, test = (corpus.get(split) or {} for split in ("train", "valid", "test"))
    removed = corpus.get("removed") or {}
    removed_text = ", ".join(f"{n:,} {why.replace('_', ' ')}" for why, n in removed.items()) if isinstance(removed, dict) else ""
    scripts = ", ".join(f"{script.title()} {count:,}" for script, count in (corpus.get("scripts") or {}).items())
    lines = [
        f"Train split: {train.get('documents', 0):,} documents, {train.get('words', 0):,} words, {train.get('bytes', 0):,} bytes.",
        f"Valid split (never trained on; it guided model choice, the new vocabulary and training checks"
        f"{'' if test.get('documents') else ', and the target-language scores below use it'}): "
        f"{valid.get('documents', 0):,} documents, {valid.get('words', 0):,} words.",
        *([f"Test split (read only for the final scores below, never for a choice): {test['documents']:,} documents, "
           f"{test.get('words', 0):,} words."] if test.get("documents") else []),
        f"Cleaning removed {removed_text or 'nothing'}" + (f"; characters by script: {scripts}." if scripts else "."),
    ]
    sources = _source_names(config)
    if sources:
        lines.append(rich("Source files: ", *[part for i, s in enumerate(sources) for part in ((", " if i else ""), Code(s))], "."))
    return [Heading(2, "Data"), Bullets(tuple(lines))]


def _training_recipe(config, train: dict) -> str:
    stages = ", ".join(f"{s['name']} ({s['steps']:,} steps)" for s in train.get("stages") or [])
    stages = stages or ", ".join(config.get("train.stages"))
    text = (f"Training: {stages}; {train.get('tokens_per_step', 0):,} tokens per step in blocks of {config.get('train.seq_len'):,}, "
            f"{train.get('tokens', 0):,} tokens in all; AdamW, peak learning rate {config.get('train.learning_rate'):g}")
    if config.get("train.embedding_learning_rate"):
        text += f" (embeddings and head {config.get('train.embedding_learning_rate'):g})"
    text += (f", {config.get('train.schedule')} schedule after {config.get('train.warmup_steps'):,} warm-up step(s), "
             f"weight decay {config.get('train.weight_decay'):g}")
    if config.get("train.replay_fraction") > 0:
        source = config.get("train.replay_text")
        source = "sampled from the base model itself" if source == "self" else source
        text += f"; {config.get('train.replay_fraction'):.0%} of blocks replay English text ({source}) against forgetting"
    if "lora" in config.get("train.stages"):
        text += f"; LoRA rank {config.get('train.lora_rank')}, alpha {config.get('train.lora_alpha')}"
    used = (train.get("precision") or {}).get("name")
    precision = f"{used} (train.precision = {config.get('train.precision')})" if used else config.get("train.precision")
    if used == "bf16":
        precision += ", computed in bf16 over fp32 master weights and optimizer state"
    return text + f"; precision {precision}."


def _method(config, outputs: Outputs) -> list[Block]:
    tokenizer, extend, train = outputs.tokenizer or {}, outputs.extend or {}, outputs.train or {}
    lines = []
    if tokenizer:
        lines.append(f"Tokenizer: a {tokenizer.get('library', 'sentencepiece')} {tokenizer.get('model_type', '')} tokenizer of "
                     f"{(tokenizer.get('vocab_size') or {}).get('trained', 0):,} pieces trained on the train split.")
    if extend:
        checks = extend.get("checks") or {}
        kept = f"; all {checks['existing_ids_kept']:,} existing token ids kept" if checks.get("existing_ids_kept") else ""
        lines.append(f"Vocabulary {extend.get('mode', 'extend')}: {extend.get('added_tokens', 0):,} new tokens "
                     f"({extend.get('method', extend.get('mode'))}){kept}; embedding matrix padded to "
                     f"{(extend.get('embedding_rows') or {}).get('extended', 0):,} rows.")
        comparison = extend.get("init_comparison") or []
        probed = ", ".join(f"{r['method']} {r['probe_bits_per_byte']:.3f}" for r in comparison)
        compared = f"; compared by a short embeddings-only probe: {probed} held-out bits per byte ({LOWER})" if comparison else ""
        lines.append(f"Initialisation of the new embedding rows: {extend.get('init', '?')}{compared}.")
    if train:
        lines.append(_training_recipe(config, train))
    return [Heading(2, "Method"), Bullets(tuple(lines))] if lines else []


def _evaluation(outputs: Outputs) -> list[Block]:
    evaluation = outputs.evaluation
    if not evaluation:
        return [Heading(2, "Evaluation"),
                Paragraph(rich("Not evaluated yet: run ", Code("langbuild run"), " and export again for the numbers."))]
    table = held_out_table(evaluation)
    forgetting = forgetting_line(evaluation)
    split = scored_split_line(evaluation)
    return [
        Heading(2, "Evaluation"),
        Paragraph("Base is the model as released, extended the same model with the new vocabulary before training, "
                  "trained this model. Brackets hold 95 % bootstrap intervals."),
        Heading(3, "Held-out text"),
        *([table] if table else []),
        *([Paragraph(split)] if split else []),
        *([Paragraph(forgetting)] if forgetting else []),
        *benchmark_blocks(evaluation, 3),
        *generation_blocks(evaluation, 3),
    ]


def _prompt(project) -> str:
    """A few words of the first held-out document, so the snippet runs on real target-language text."""
    from ..corpus.shards import read_split

    try:
        text = next(read_split(project.step_dir("corpus"), "valid"), "")
    except (OSError, ValueError, KeyError):
        text = ""
    return first_words(str(text), 6)


def _usage(project, language: str) -> list[Block]:
    prompt = _prompt(project) or f"Text in {language}"
    snippet = "\n".join([
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        'path = "PATH/OR/HUB-ID/OF/THIS/MODEL"',
        "tokenizer = AutoTokenizer.from_pretrained(path)",
        "model = AutoModelForCausalLM.from_pretrained(path)",
        f"inputs = tokenizer({prompt!r}, return_tensors=\"pt\")",
        "output = model.generate(**inputs, max_new_tokens=60, do_sample=True, top_p=0.9, temperature=0.8)",
        "print(tokenizer.decode(output[0], skip_special_tokens=True))",
    ])
    return [Heading(2, "How to use"), Paragraph("It is a plain causal language model: load it with transformers and let it "
                                                f"continue {language} text."), CodeBlock(snippet, "python")]


def _limitations(config, outputs: Outputs, language: str) -> list[Block]:
    train_words = ((outputs.corpus or {}).get("train") or {}).get("words")
    size = f"{train_words:,} words" if train_words else "a small corpus"
    sources = ", ".join(_source_names(config)) or "the corpus files"
    lines = [
        f"Small corpus: continued pretraining saw {size} of {language} — tiny next to the base model's pretraining data. "
        "Expect grammatical slips, invented words and facts, and weak knowledge of anything the corpus does not cover.",
        f"One domain: the model writes like its corpus ({sources}). Low-resource corpora are often a single source, such as "
        "religious text (a Bible translation) or news; register, vocabulary and topics outside it are poorly served.",
    ]
    built = [name for name, task in tasks(outputs.evaluation).items() if task.get("origin") == "built from held-out data"]
    if built:
        lines.append(f"In-domain benchmarks: {', '.join(built)} are built from held-out text of the same source as the "
                     "training data (decontaminated against the train split, but same style and topics). They measure fit to "
                     "that source and overstate ability on other text.")
    forgetting = forgetting_line(outputs.evaluation)
    lines.append(forgetting + " Other abilities of the base model (reasoning, other languages, instruction following) "
                 "were not measured and may have degraded." if forgetting else
                 "English forgetting was not measured; abilities of the base model may have degraded.")
    lines.append("Not instruction-tuned and not safety-tuned: it continues text, does not follow instructions, and any "
                 "alignment of the base model may be weakened by continued pretraining. Filter and evaluate its output before "
                 "showing it to anyone.")
    blocks: list[Block] = [Heading(2, "Limitations"), Bullets(tuple(lines))]
    return blocks


# ---------------------------------------------------------------- citations

TOKENIZER_PAPERS = {
    "sentencepiece": "Kudo & Richardson 2018, \"SentencePiece: A simple and language independent subword tokenizer and "
                     "detokenizer for Neural Text Processing\" (EMNLP demo)",
    "unigram": "Kudo 2018, \"Subword Regularization: Improving Neural Network Translation Models with Multiple Subword "
               "Candidates\" (ACL)",
    "bpe": "Sennrich, Haddow & Birch 2016, \"Neural Machine Translation of Rare Words with Subword Units\" (ACL)",
}
INIT_PAPERS = {
    "subword-mean": ["Gee et al. 2022, \"Fast Vocabulary Transfer for Language Model Compression\" (EMNLP industry)",
                     "Koto, Lau & Baldwin 2021, \"IndoBERTweet: A Pretrained Language Model for Indonesian Twitter with "
                     "Effective Domain-Specific Vocabulary Initialization\" (EMNLP)"],
    "focus": ["Dobler & de Melo 2023, \"FOCUS: Effective Embedding Initialization for Monolingual Specialization of "
              "Multilingual Models\" (EMNLP)"],
    "wechsel": ["Minixhofer, Paischer & Rekabsaz 2022, \"WECHSEL: Effective initialization of subword embeddings for "
                "cross-lingual transfer of monolingual language models\" (NAACL)"],
    "tokenadapt": ["Sharthak et al. 2025, \"Achieving Tokenizer Flexibility in Language Models through Heuristic Adaptation "
                   "and Supertoken Learning\""],
    "multivariate": ["Hewitt 2021, \"Initializing New Word Embeddings for Pretrained Language Models\""],
    "script": ["Downey et al. 2023, \"Embedding Structure Matters: Comparing Methods to Adapt Multilingual Vocabularies to "
               "New Languages\" (MRL workshop)"],
}
EXTENSION_BPE = "Purason et al. 2025, \"Teaching Old Tokenizers New Words\""
LORA = "Hu et al. 2021, \"LoRA: Low-Rank Adaptation of Large Language Models\" (ICLR 2022)"
WSD = "Hu et al. 2024, \"MiniCPM: Unveiling the Potential of Small Language Models with Scalable Training Strategies\""
REPLAY = "Ibrahim et al. 2024, \"Simple and Scalable Strategies to Continually Pre-train Large Language Models\" (TMLR)"
SELF_REPLAY = ("Huang et al. 2024, \"Mitigating Catastrophic Forgetting in Large Language Models with Self-Synthesized "
               "Rehearsal\" (ACL)")
ADAMW = "Loshchilov & Hutter 2019, \"Decoupled Weight Decay Regularization\" (ICLR)"
LM_EVAL = "Biderman et al. 2024, \"Lessons from the Trenches on Reproducible Evaluation of Language Models\" (lm-evaluation-harness)"
CLOZE = "Mostafazadeh et al. 2016, \"A Corpus and Cloze Evaluation for Deeper Understanding of Commonsense Stories\" (NAACL)"
DECONTAMINATION = "Brown et al. 2020, \"Language Models are Few-Shot Learners\" (13-gram decontamination)"
PARITY = "Petrov et al. 2023, \"Language Model Tokenizers Introduce Unfairness Between Languages\" (NeurIPS)"
FLORES = "NLLB Team 2022, \"No Language Left Behind: Scaling Human-Centered Machine Translation\" (FLORES-200)"


def _tokenizer_papers(tokenizer: dict) -> list[str]:
    library, model_type = tokenizer.get("library", "sentencepiece"), tokenizer.get("model_type", "")
    papers = [TOKENIZER_PAPERS["sentencepiece"]] if library == "sentencepiece" else []
    return papers + ([TOKENIZER_PAPERS[model_type]] if model_type in ("unigram", "bpe") else [])


def _init_papers(extend: dict) -> list[str]:
    methods = [extend.get("init")] + [row.get("method") for row in extend.get("init_comparison") or []]
    return [paper for method in dict.fromkeys(methods) for paper in INIT_PAPERS.get(method, [])]


def citations(config, outputs: Outputs) -> list[str]:
    """The papers behind the methods this model was actually built with, in pipeline order, each once."""
    extend = outputs.extend or {}
    papers = _tokenizer_papers(outputs.tokenizer or {})
    papers += [EXTENSION_BPE] if "bpe" in str(extend.get("method", "")) else []
    papers += _init_papers(extend)
    stages = [s.get("name") for s in (outputs.train or {}).get("stages") or []] or list(config.get("train.stages"))
    papers += [ADAMW] + ([LORA] if "lora" in stages else []) + ([WSD] if config.get("train.schedule") == "wsd" else [])
    papers += [REPLAY] if config.get("train.replay_fraction") > 0 else []
    papers += [SELF_REPLAY] if config.get("train.replay_fraction") > 0 and config.get("train.replay_text") == "self" else []
    found = tasks(outputs.evaluation)
    papers += [LM_EVAL] if found else []
    papers += [CLOZE, DECONTAMINATION] if any(name.endswith("_cloze") for name in found) else []
    papers += [PARITY]
    sources = [str(config.get(key)) for key in ("eval.source_text", "extend.protect_text", "train.replay_text")]
    sources += [config.get("train.replay_prompts")] if config.get("train.replay_text") == "self" else []
    papers += [FLORES] if any(source.startswith("flores") for source in sources) else []
    return list(dict.fromkeys(papers))


def _citations(config, outputs: Outputs) -> list[Block]:
    return [Heading(2, "Citation"),
            Paragraph("This model was built with langbuild from these methods; please cite them when you use it:"),
            Bullets(tuple(citations(config, outputs)))]


# ---------------------------------------------------------------- the card


def card_blocks(project, outputs: Outputs, base: BaseModel) -> list[Block]:
    config = project.config
    language = config.get("project.language")
    name = config.get("project.name") or project.root.name
    blocks = [Heading(1, name), *_summary(name, language, base, outputs)]
    if base.license_note:
        blocks.append(Paragraph(rich(Strong("License:"), " ", base.license_note)))
    return blocks + [*_data(config, outputs.corpus), *_method(config, outputs), *_evaluation(outputs),
                     *_usage(project, language), *_limitations(config, outputs, language), *_citations(config, outputs)]


def render_card(project, include_eval: bool = True) -> str:
    """The model card (README.md with YAML front matter) of ``project``'s trained model.

    ``include_eval=False`` leaves out eval's numbers, for an export whose eval step is not up to date
    with the trained model.
    """
    outputs = load_outputs(project, include_eval=include_eval)
    base = base_model_info(outputs.selection)
    config = project.config
    name = config.get("project.name") or project.root.name
    header = front_matter(name, config.get("project.language"), base, outputs.evaluation)
    return header + "\n" + to_markdown(card_blocks(project, outputs, base))
