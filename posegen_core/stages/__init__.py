"""The PoseGen loop, one stage per module, each a function over plain data (a ``RunContext``):

- ``build``: the parts of a run (renderer, estimator, prior, discriminator, pose splits), pre-training when needed;
- ``context``: the training state (G, D, P, optimisers, history pool, random stream) and the shared helpers;
- ``gan``: G and D with the estimator's feedback (paper eqs. 8-10), optionally fine-tuning P in the loop;
- ``dataset``: the fine-tuning set, drawn by the run's dataset sampler strategy, exported in SPIN's layout;
- ``finetune``: P on that set, mixed with source-domain renders (eq. 13's threshold);
- ``evaluate``: before/after metrics on held-out takes, summary.json, the report.

``posegen_core.loop.PoseGenRun`` keeps the run folder, checkpoints and resume, and calls the stages in order.
"""
