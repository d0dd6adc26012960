"""Streamlit widgets of the Import page: the editable column mapping, progress, uploads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import streamlit as st

from engine.importers import parse_mapping


def mapping_frame(mapping: dict[str, list[str]]) -> pd.DataFrame:
    """Store field -> source column(s) as an editable table (``a+b`` sums reward columns)."""
    return pd.DataFrame({"field": list(mapping), "column": ["+".join(c) for c in mapping.values()]})


def mapping_from_frame(frame: pd.DataFrame) -> dict[str, list[str]]:
    """The edited table back to a mapping; empty rows are ignored (raises ConfigError on a bad field)."""
    items = [
        f"{row.field}={row.column}"
        for row in frame.itertuples()
        if isinstance(row.field, str)
        and row.field.strip()
        and isinstance(row.column, str)
        and row.column.strip()
    ]
    return parse_mapping(items)


def progress_factory(bar) -> Callable[[int], Callable[[int], None]]:
    """An ``import_run`` progress factory that moves ``st.progress`` bar ``bar``."""

    def make(total: int) -> Callable[[int], None]:
        done = 0

        def update(n: int) -> None:
            nonlocal done
            done += n
            bar.progress(
                min(max(done / total, 0.0), 1.0) if total else 1.0, text=f"{done / 2**20:.1f} MB read"
            )

        return update

    return make


def save_upload(uploaded, root: Path) -> Path:
    """Write an uploaded file under ``root/.uploads/`` (a hidden folder the run list skips), under its
    own base name, or ``upload`` when that is none (a name of ``..``, ``.`` or nothing would name the
    folder itself). OSError when it cannot be written (a full disk, a name too long)."""
    folder = root / ".uploads"
    folder.mkdir(parents=True, exist_ok=True)
    name = Path(uploaded.name).name.strip()
    path = folder / (name if name not in ("", ".", "..") else "upload")
    path.write_bytes(uploaded.getbuffer())
    return path


def show_mapping_editor(mapping: dict[str, list[str]], key: str) -> pd.DataFrame:
    return st.data_editor(
        mapping_frame(mapping),
        num_rows="dynamic",
        key=key,
        hide_index=True,
        column_config={
            "field": st.column_config.TextColumn("Store field", help="prompt, response, reward, step, ..."),
            "column": st.column_config.TextColumn("Source column", help="reward may sum columns: a+b"),
        },
    )
