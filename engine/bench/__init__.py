"""Benchmarks: ``python -m engine bench {ppo,grpo,sampling,store,import,app} ...`` (``ppo``, ``grpo``,
``sampling`` and ``store`` are a contract).

Each benchmark is a module ``engine.bench.<name>`` exposing ``add_arguments(parser)`` and
``main(args)``, with its heavy imports inside functions; ``engine.cli.bench`` registers every module
listed here, and a benchmark that fails to import is an error.
"""

from __future__ import annotations

# benchmark name -> (module under engine.bench, help)
BENCHMARKS = {
    "ppo": ("ppo", "PPO iteration throughput"),
    "grpo": ("grpo", "GRPO step time and peak memory against TRL's GRPOTrainer"),
    "sampling": ("sampling", "sampling and per-token signal throughput"),
    "store": ("store", "rollout store write and query speed"),
    "import": ("import_bench", "import throughput and peak memory on a generated JSONL, against pandas"),
    "app": ("app", "the app in a real browser: cold start, page switches, lab sliders, against a bare app"),
}
