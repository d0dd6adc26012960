"""The tools that build the built-in world and measure it, by running the engine on it.

``build`` generates the world's data and trains its models (SFT, reward model); ``check`` and
``ppo_checks`` measure the phenomena the world must show (``python -m engine world check``), PPO runs
included; ``epochs`` samples every SFT checkpoint (which epoch PPO starts from); ``samples`` samples
one checkpoint over a prompt set. They stand above PPO, SFT and the reward model, which they run;
the world they work on (:mod:`engine.world`: vocabulary, families, gold judge, data, loading) stands
below PPO, which reads it. Code that trains or samples a model belongs here, never in ``engine.world``.
"""
