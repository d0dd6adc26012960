"""Tools of the real world (:mod:`engine.real_world`): what is built on SmolLM2 and its tasks, above the
engine's training code, as :mod:`engine.world_tools` is for the built-in world.

- :mod:`engine.real_tools.build`: ``python -m engine real build``, the task sets and a Bradley-Terry
  reward model trained on the model's own samples, labelled by the checkers with noise;
- :mod:`engine.real_tools.rm_training`: that RM's training, the frozen layers run once per sample;
- :mod:`engine.real_tools.check`: ``python -m engine real check``, what a PPO run on the real world
  shows (held-out accuracy, entropy, pass@k, RM-checker agreement, start vs end).
"""
