"""Import: bring the rollouts of a run made elsewhere (TRL, verl, NeMo-RL, prime-rl, tables) into the store."""

from pathlib import Path

import streamlit as st

from engine.config import ConfigError
from engine.importers import import_run, preview
from engine.importers.formats import FORMAT_HELP
from engine.importers.pipeline import default_run_id
from engine.paths import runs_dir
from workbench.import_widgets import mapping_from_frame, progress_factory, save_upload, show_mapping_editor
from workbench.navigation import page_link
from workbench.widgets import show_error

st.title("Import a run")
st.caption(
    "Rollouts logged by another framework become a run of the store, so the analysis pages read "
    "them like the engine's own. Large files are read in batches; the run appears only once complete."
)

root = runs_dir()
fmt = st.selectbox(
    "Format", list(FORMAT_HELP), format_func=lambda f: f"{f}: {FORMAT_HELP[f]}", key="import_format"
)
source = st.radio("Source", ["Path on this machine", "Upload a file"], horizontal=True, key="import_source")
path: Path | None = None
if source == "Path on this machine":
    typed = st.text_input("File or directory", key="import_path", placeholder="/data/run/completions")
    try:
        path = Path(typed).expanduser() if typed.strip() else None
    except RuntimeError as exc:  # ~user of no such user
        show_error(exc, "Cannot read this path")
        st.stop()
else:
    uploaded = st.file_uploader("Rollout file", type=["jsonl", "json", "parquet", "csv"], key="import_upload")
    try:
        path = save_upload(uploaded, root) if uploaded is not None else None
    except OSError as exc:
        show_error(exc, "Could not keep the uploaded file")
        st.stop()

if path is None:
    st.info("Give a file or a directory (or upload a file) to preview its first rows.")
    st.stop()

given_key = f"import_mapping_given_{fmt}_{path}"
given = st.session_state.get(given_key, {})
try:
    rows, mapping, warnings = preview(fmt, path, given)
except (ConfigError, OSError) as exc:
    show_error(exc, "Cannot preview this source")
    st.stop()

st.subheader("Column mapping")
st.caption("Store field <- source column, as found in the first rows. Edit a row to change it.")
edited = show_mapping_editor(mapping, key=f"import_mapping_{fmt}_{path}")
try:
    new_mapping = mapping_from_frame(edited)
except ConfigError as exc:
    show_error(exc, "Bad column mapping")
    st.stop()
if new_mapping != mapping and st.button("Apply the mapping to the preview", key="import_apply"):
    st.session_state[given_key] = new_mapping
    st.rerun()
for warning in warnings:
    st.warning(warning)

st.subheader("First rows, as they will be stored")
shown = [c for c in ("step", "prompt_id", "prompt", "response", "reward", "gold", "extras") if c in rows]
st.dataframe(rows[shown], hide_index=True, width="stretch")

c1, c2 = st.columns([3, 1])
run_id = c1.text_input("Run id", value=default_run_id(path), key="import_run_id")
replace = c2.checkbox("Replace an existing run", key="import_replace")
if st.button("Import", type="primary", key="import_go"):
    bar = st.progress(0.0, text="reading")
    try:
        result = import_run(
            fmt, path, runs_dir=root, run_id=run_id.strip(), mapping=new_mapping, replace=replace,
            progress_factory=progress_factory(bar),
        )  # fmt: skip
    except (ConfigError, OSError) as exc:
        bar.empty()
        show_error(exc, "Import refused")
        st.stop()
    bar.progress(1.0, text="done")
    st.session_state["import_done"] = result.as_dict()
    st.cache_data.clear()  # the run lists of the other pages

done = st.session_state.get("import_done")
if done:
    st.success(
        f"Imported {done['rows']:,} rows ({done['steps']} steps, {done['prompts']:,} prompts) as "
        f"`{done['run_id']}` in {done['seconds']:.1f} s."
    )
    for warning in done["warnings"]:
        st.warning(warning)
    st.session_state["browser_run"] = done["run_id"]  # the Rollout browser opens on it
    page_link("rollout_browser.py", f"Open {done['run_id']} in the Rollout browser", {"run": done["run_id"]})
    st.caption(
        "No per-token signals in the source? Recompute them with a local model: "
        f"`python -m engine import signals {done['run_id']} --model PATH_OR_NAME`"
    )
