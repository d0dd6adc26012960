"""Tools that run the engine on the real world (SmolLM2, :mod:`engine.real_world`): ``real check``
(:mod:`engine.real_tools.check`), what a PPO run on it shows."""
