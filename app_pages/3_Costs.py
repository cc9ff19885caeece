"""Training memory and trainable parameters of every method, estimated and measured."""
import pandas as pd
import streamlit as st

import lamda_core as lc
from lamda_core import choices, figures
from lamda_core.choices import OPTIMIZERS
from lamda_core.methods import display_order
from lamda_core.planning.estimate import CostBreakdown
from studio_ui.common import page_setup, sidebar, user_message
from studio_ui.run_settings import default_data, draft_config, setting
from studio_ui.state import kept, kept_choice

page_setup("Costs")
source, task, dtype = sidebar()
st.title("Costs")
if not source:
    st.info("Enter a local model folder or a hub id in the sidebar.")
    st.stop()
st.caption("Each method as **Start** on the Fine-tune page would train it: batch, sequence length, rank and "
           "steps are the Fine-tune form's (changing them here changes them there), each method at its own "
           "default rank, dropout and rate where the form says 0.")
c1, c2, c3 = st.columns(3)
c4, c5, c6 = st.columns(3, vertical_alignment="bottom")
c1.number_input("Batch size", 1, 4096, **kept("run_batch", setting("run_batch")))
c2.number_input("Sequence length", 8, 131072, **kept("run_seq", setting("run_seq")),
                help="Tokens per example; activations grow with batch x sequence.")
c3.number_input("Rank (0 = method default)", 0, 1024, **kept("run_rank", setting("run_rank")),
                help="r of every adapted matrix (LaMDA++ uses the Rank budget page's ranks).")
optimizer = c4.selectbox("Optimizer", OPTIMIZERS, **kept_choice("cost_optimizer", list(OPTIMIZERS), OPTIMIZERS[0]),
                         help="AdamW keeps two fp32 moments per trainable parameter; SGD none.")
device = c5.selectbox("Kernels of", ["cpu", "cuda"], **kept_choice("cost_device", ["cpu", "cuda"], "cpu"),
                      help="Which kernels the estimate assumes: CUDA attention keeps less than the CPU path.")
checkpointing = c6.checkbox("Checkpointing", **kept("cost_gc", False),
                            help="Gradient checkpointing: recompute each layer's activations in backward, keeping "
                                 "only the layer inputs.")
pattern = None
if st.session_state.get("allocation_source") == source and "allocation" in st.session_state:
    pattern = st.session_state["allocation"].rank_pattern
methods = display_order()  # LaMDA++ without the Rank budget page's ranks: allocated from the spectra
trainable_task = task in choices.TRAIN_TASKS
try:
    queries = {m: lc.CostQuery.from_train_config(
        draft_config(source, task if trainable_task else "classification", dtype, m, default_data(task), pattern),
        task=task, optimizer=optimizer, device=device, gradient_checkpointing=checkpointing,
        mixed_precision=dtype != "float32") for m in methods}
    st.session_state["cost_queries"] = queries  # what the page estimated (tests compare it with the run Start creates)
    estimates, left_out = lc.estimate_each(queries)
except lc.LamdaError as error:
    st.error(user_message(error))
    st.stop()
for m, error in left_out.items():  # a method this model cannot take (PSOFT on GPT-2's Conv1D)
    st.caption(f"**{m}** is left out: {user_message(error)}")
if not pattern:
    st.caption("LaMDA++ ranks: allocated from the spectra at the run's rank x matrices; **Use for fine-tune** on "
               "the Rank budget page chooses others.")
st.plotly_chart(figures.cost_figure(estimates), width="stretch")
st.caption("**Peak** is what the allocator holds at the step's highest point: weights and optimizer state, plus "
           "either the kept activations and the largest short-lived tensors (forward or backward) or the "
           "gradients and the optimizer's scratch. The bars show where the memory goes; their sum (the census) "
           "never all lives at once.")
rows = {m: {"peak (MiB)": e.peak / 2 ** 20, "peak in": e.peak_phase,
            "census (MiB)": e.total / 2 ** 20, "activations (MiB)": e.activations / 2 ** 20,
            "trainable at start": e.trainable_start, "trainable after B freezes": e.trainable_end,
            "trainable averaged": round(e.trainable_average)} for m, e in estimates.items()}
st.dataframe(pd.DataFrame(rows).T, width="stretch")

st.subheader("Measure on this machine")
method = st.selectbox("Method to measure", methods, **kept_choice("measure_method", methods, choices.DEFAULT_METHOD))
if st.button("Run one training step and compare", key="measure"):
    with st.spinner("Measuring one real training step…"):
        try:
            measured = lc.measure_costs(queries[method].replace(mixed_precision=False))
        except lc.LamdaError as error:
            st.error(user_message(error))
            st.stop()
    estimate = estimates[method]
    rows = ("peak",) + CostBreakdown.COMPONENTS + ("total",)
    comparison = pd.DataFrame({
        "estimated (MiB)": [getattr(estimate, c) / 2 ** 20 for c in rows],
        "measured (MiB)": [getattr(measured, c) / 2 ** 20 for c in rows]},
        index=["peak (allocator)"] + list(CostBreakdown.COMPONENTS) + ["census total"])
    comparison["error"] = [f"{(e - m) / m:+.1%}" if m else "-" for e, m in
                           zip(comparison["estimated (MiB)"], comparison["measured (MiB)"])]
    st.session_state["measured_table"] = comparison
    st.session_state["measured_note"] = (
        f"{method}: measured peak {measured.peak / 2 ** 20:,.1f} MiB in the {measured.peak_phase} "
        + f"(estimated {estimate.peak / 2 ** 20:,.1f} MiB in the {estimate.peak_phase}, "
        f"{estimate.peak / measured.peak - 1:+.1%}); the process's resident memory grew "
        f"{measured.rss_growth / 2 ** 20:,.1f} MiB during the step.")
if "measured_table" in st.session_state:
    st.markdown(st.session_state["measured_note"])
    st.dataframe(st.session_state["measured_table"], width="stretch")
