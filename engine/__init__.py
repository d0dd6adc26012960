"""PPO Entropy Workbench engine: models, sampling signals, PPO, the toy world, the rollout store.

Pure Python + torch + duckdb. Never imports streamlit; importing it has no side effects.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
