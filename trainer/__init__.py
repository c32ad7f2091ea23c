"""knowd's consolidation trainer: distil changed facts into a LoRA adapter of the LLM.

Importing this package (or `trainer.config`, `trainer.adapters`, `trainer.runs`,
`trainer.report`'s `latest_report`) costs no torch: the heavy imports live in
`trainer.lm`, `trainer.distill`, `trainer.evaluate`, `trainer.export` and are
only made by a running consolidation, which the daemon starts as a separate
process (``knowd consolidate``; on its own, ``python -m trainer consolidate``).
The package imports only ``stores`` (docs/architecture.md).

Public entry points:

* `trainer.run.consolidate(cfg, store, data_dir, progress=True, base_gguf=...) -> RunResult`
* `trainer.adapters.list_versions / use_version / rollback / clear_live / live / run_action`
* `trainer.runs.list_runs / latest_run`
* `trainer.report.latest_report(data_dir, date=None) -> Path`
* `trainer.config.TrainerConfig.from_dict(section)`
"""
