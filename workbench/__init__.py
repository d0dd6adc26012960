"""The Streamlit app (``streamlit run workbench/app.py``) and its UI helpers."""
