"""The real world: tasks with verifiable answers for a real pretrained chat model (``smollm2``).

The counterpart of the built-in toy world (:mod:`engine.world`): what the world *is* lives here, the
prompts (:mod:`engine.real_world.tasks`) and the checkers that are its gold judge
(:mod:`engine.real_world.checkers`); pure Python, no torch. What is built on top of it (a reward model
trained on the model's own samples, PPO runs) is a tool of the world and lives elsewhere.
"""

from engine.real_world.checkers import correct_number, count_words, exact_words, final_number, number_only
from engine.real_world.tasks import FAMILIES, PPO_FAMILIES, Family, Task, TaskSets, make_task_sets, score

__all__ = [
    "FAMILIES",
    "PPO_FAMILIES",
    "Family",
    "Task",
    "TaskSets",
    "correct_number",
    "count_words",
    "exact_words",
    "final_number",
    "make_task_sets",
    "number_only",
    "score",
]
