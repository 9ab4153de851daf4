"""Training image and text LoRAs; results are filed into the catalog.

One loop, many tasks.  ``config`` (shared settings) + ``settings`` (typed
keys → checks and schema) read a TOML file; ``registry`` finds the task for
its ``task_type``; the task's ``plan`` checks the data without a model;
``run.train`` creates the accelerator and the task and drives
``loop.run_loop`` (accumulation, mixed precision, optimizer and schedule
from ``optim``, atomic checkpoints and exact resume from ``checkpoint``,
Ctrl-C and out-of-memory from ``interrupt``); ``progress`` draws the run;
``handoff`` files the result into the library.  A task lives in its own
package (``text/``, ``image/``) and registers itself on import, without
importing torch.  Distributed runs use accelerate as is:
``accelerate launch $(which lutnav) train cfg.toml``.
"""
