"""Model (home): pick a model in the sidebar and see its summary."""
import pandas as pd
import streamlit as st

from lamda_core.models.summary import summarize_model
from studio_ui.common import model_or_stop, page_setup, runs_root, sidebar, user_message

page_setup("Model")
source, task, dtype = sidebar()
st.title("LaMDA Studio")
st.caption("Understand a transformer's weights and adapt it cheaply with LaMDA and LaMDA++.")
model, tokenizer = model_or_stop(source, task, dtype)

summary = summarize_model(model)
cols = st.columns(4)
cols[0].metric("Parameters", f"{summary.parameters / 1e6:.1f} M")
cols[1].metric("Layers", summary.layers if summary.layers is not None else "?")
cols[2].metric("Hidden size", summary.hidden_size if summary.hidden_size is not None else "?")
cols[3].metric("Adaptable matrices", summary.target_count)
st.write(f"**{summary.architecture}** ({summary.family} family, {summary.dtype} weights)")
st.dataframe(pd.DataFrame({"kind": list(summary.targets_by_kind), "matrices": list(summary.targets_by_kind.values())}),
             hide_index=True)
with st.expander("Machine check (`lamda doctor`)"):
    st.caption("Python, packages, threads, free memory and disk for runs, the embedded model, the GPU.")
    if st.button("Run the checks", key="doctor"):
        from lamda_core.doctor import run_checks

        with st.spinner("checking..."):
            checks = run_checks(runs_root())  # the runs folder this app writes to
        for check in checks:
            line = f"**{check.name}**: {user_message(check.detail)}" + (f" \n{check.advice}" if check.advice else "")
            (st.success if check.ok else st.warning)(line)
st.markdown("""
**Next:** explore the normalized singular-value spectra (**Spectrum**), set a LaMDA++ rank budget and
watch the allocation and its cost change (**Rank budget**, **Costs**), then run a short fine-tune
(**Fine-tune**) and compare runs (**Runs**).
""")
