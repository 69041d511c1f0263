"""Evaluation beyond bits per byte: lm-eval tasks, benchmarks built from held-out text, intervals, speed.

The eval step's machinery: :mod:`.task_plan` (which tasks eval.tasks asks for), :mod:`.held_out_tasks`
(tasks built from the held-out split), :mod:`.scoring` (one model: held-out bits, speed, benchmarks)
and :mod:`.results` (metrics.json from every model's scores).
"""
