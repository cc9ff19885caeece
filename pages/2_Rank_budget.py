"""LaMDA++: move the rank budget and see the allocation, the energy kept and the cost."""
import pandas as pd
import streamlit as st

import lamda_core as lc
from lamda_core import figures
from lamda_core.choices import ALLOCATION_STRATEGIES
from studio_ui.common import matrix_labels, page_setup, report_or_stop, sidebar

page_setup("Rank budget")
source, task, dtype = sidebar()
st.title("Rank budget")
report = report_or_stop(source)
matrices = len(report.matrices)

c1, c2, c3, c4 = st.columns(4)
base_rank = c1.slider("Base rank r0", 1, 64, 8, key="base_rank")
strategy = c2.selectbox("Strategy", ALLOCATION_STRATEGIES, key="strategy")
r_min = c3.number_input("r min", 1, 256, max(1, base_rank // 4), key="r_min")
r_max = c4.number_input("r max", 1, 1024, 4 * base_rank, key="r_max")
c5, c6 = st.columns([1, 3])
kind = c5.radio("Budget as", ["total rank", "trainable parameters"], key="budget_kind")
multiple = c5.selectbox("Ranks in multiples of", [1, 2, 4, 8], key="multiple")
uniform_params = sum(base_rank * base_rank + base_rank * m.d_out for m in report.matrices)
if kind == "total rank":
    budget = c6.slider("Budget (total rank)", matrices * int(r_min), matrices * int(r_max), matrices * base_rank,
                       step=multiple, key="budget_rank")
else:
    budget = c6.slider("Budget (trainable adapter parameters)", uniform_params // 4, uniform_params * 4,
                       uniform_params, step=max(1, uniform_params // 200), key="budget_params")
try:
    allocation = lc.allocate_ranks(report, base_rank, budget=budget, strategy=strategy, r_min=int(r_min),
                                   r_max=int(r_max), multiple=multiple,
                                   budget_kind="rank" if kind == "total rank" else "params")
except lc.LamdaError as error:
    st.error(str(error))
    st.stop()

query = lc.CostQuery(source, rank=base_rank, batch_size=16, seq_len=128, task=task, dtype=dtype)
costs = {m: lc.estimate_costs(query.replace(method=m, rank_pattern=allocation.rank_pattern if m == "lamda++" else None))
         for m in ("lamda", "lamda++", "lora")}
m1, m2, m3, m4 = st.columns(4)
m1.metric("Total rank", allocation.total_rank, f"{allocation.total_rank - base_rank * matrices:+d} vs uniform")
m2.metric("LaMDA++ adapter params (start)", f"{allocation.parameters:,}",
          f"{allocation.parameters - allocation.uniform_parameters:+,} vs uniform")
m3.metric("Averaged over freezing", f"{costs['lamda++'].trainable_average - (costs['lamda++'].trainable_start - costs['lamda++'].adapter_start):,.0f}",
          f"LoRA: {costs['lora'].adapter_start:,}", delta_color="off")
m4.metric("Training memory (batch 16 x 128)", f"{costs['lamda++'].total / 2 ** 20:,.1f} MiB",
          f"{(costs['lamda++'].total - costs['lamda'].total) / 2 ** 20:+.2f} MiB vs uniform LaMDA", delta_color="inverse")

labels = matrix_labels(report)
st.plotly_chart(figures.allocation_figure(allocation, labels), width="stretch")
table = pd.DataFrame({"matrix": list(allocation.ranks), "label": [labels[n] for n in allocation.ranks],
                      "rank": list(allocation.ranks.values()), "uniform": base_rank,
                      "energy kept": list(allocation.energy_kept.values()),
                      "energy at uniform": list(allocation.uniform_energy.values())})
st.dataframe(table, hide_index=True, width="stretch")
s1, s2 = st.columns(2)
s1.download_button("Save ranks (JSON)", allocation.to_json(), "ranks.json", "application/json")
if s2.button("Use for fine-tune", key="use_ranks"):
    st.session_state["allocation"] = allocation  # the object itself; Costs and Fine-tune read it
    st.session_state["allocation_source"] = source
    st.success("The Fine-tune page will offer LaMDA++ with these ranks.")
