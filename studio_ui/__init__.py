"""Streamlit glue shared by the app's pages: the model sidebar, cached loads, error display.
Pages arrange widgets and call lamda_core; nothing here computes."""
