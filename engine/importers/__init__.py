"""Importers: rollouts of runs made elsewhere (TRL, verl, NeMo-RL, prime-rl, W&B tables, plain
tables) -> the run store's layout, so the analysis pages read them like the engine's own runs.

``import_run(fmt, path, ...)`` is what ``python -m engine import FORMAT PATH`` and the Import page
call; ``preview`` gives the first staged rows and the column mapping for the page. Each format is
one module exposing ``files(path, fmt)`` and ``stage(files, ctx)`` (ctx: a ``staging.Staging``).

Modules, by job: ``formats`` (the formats and their help: standard library only), ``staging`` (what
a format reads with and reports back), ``readers`` (files in bounded batches), ``mapping`` (source
columns -> store columns), ``steps`` (rows buffered per step), ``pipeline`` (import, preview, the
atomic write). This package imports only ``formats`` up front, so ``--help`` and the Import page's
format list load nothing heavy; the pipeline's names load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from engine.importers.formats import FORMAT_HELP, FORMATS

if TYPE_CHECKING:
    from engine.importers.mapping import parse_mapping
    from engine.importers.pipeline import ImportResult, import_run, preview

# name -> the module that defines it, imported when the name is first used (PEP 562)
_LAZY = {
    "import_run": "engine.importers.pipeline",
    "preview": "engine.importers.pipeline",
    "ImportResult": "engine.importers.pipeline",
    "parse_mapping": "engine.importers.mapping",
}

__all__ = ["FORMATS", "FORMAT_HELP", "ImportResult", "import_run", "parse_mapping", "preview"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
