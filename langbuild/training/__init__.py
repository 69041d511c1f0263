"""Continued pretraining: the data stream, the stage plan, the schedule, checkpoints and the loop.

``langbuild.steps.train`` turns the project's settings into a ``TrainPlan`` and runs it here, in this
process or, with ``train.num_processes`` > 1, in several processes started by ``accelerate launch``.
"""
