"""LaMDA++: move the rank budget and see the allocation, the energy kept and the cost."""
from pathlib import Path

import pandas as pd
import streamlit as st

import lamda_core as lc
from lamda_core import choices, figures
from lamda_core.choices import ALLOCATION_STRATEGIES
from lamda_core.costs.parameters import lamda_parameters
from lamda_core.methods import LAMDA, LAMDA_PLUS, LORA
from lamda_core.spectra.allocation import budget_bounds
from studio_ui.common import matrix_labels, page_setup, report_or_stop, sidebar, user_message
from studio_ui.state import follow, kept, kept_choice, set_kept


def training_file_importance(source: str) -> dict[str, float]:
    """The gradient rule's scores on the Fine-tune page's training file (the demo data until one is
    chosen there), computed once per source and file in a session."""
    train_data = st.session_state.get("keep_run_train_file-classification") or "demo-sentiment"
    key = ("importance", source, train_data)
    if key not in st.session_state:
        with st.spinner(f"Task gradient on the first batches of {Path(train_data).name}…"):
            st.session_state[key] = lc.gradient_importance(source, train_data)
    st.caption(f"gradient: ranks follow the task gradient on **{Path(train_data).name}** "
               "(choose another training file on the Fine-tune page).")
    return st.session_state[key]


page_setup("Rank budget")
source, task, dtype = sidebar()
st.title("Rank budget")
st.info(choices.ALLOCATION_FINDING)  # what the allocation benchmark measured (docs/quality.md)
report = report_or_stop(source)
matrices = len(report.matrices)

# Every setting is kept across pages. r min, r max and the budget follow r0 until the user sets
# them; the sliders offer only budgets the bounds allow (allocation.budget_bounds).
FOLLOWERS = {"r_min": lambda r0: max(1, r0 // 4), "r_max": lambda r0: 4 * r0}

c1, c2, c3, c4 = st.columns(4)
base_rank = c1.slider("Base rank r0", 1, 64, help="The rank of uniform LaMDA that LaMDA++ is compared with: the "
                      "default budget is r0 x matrices.", **kept("base_rank", choices.DEFAULT_LAMDA_RANK))
strategies = [s for s in ALLOCATION_STRATEGIES if s != "gradient" or task == "classification"]
strategy = c2.selectbox("Strategy", strategies, **kept_choice("strategy", strategies, strategies[0]),
                        help="equal-energy: one threshold tau, each matrix gets the smallest rank keeping "
                             "E(r) >= tau; energy-deficit: rank in proportion to 1 - E(r0), the energy uniform "
                             "LaMDA would leave out; gradient (data-driven): rank in proportion to the norm of "
                             "each matrix's task gradient on the first 8 batches of the Fine-tune page's "
                             "training file.")
for key, rule in FOLLOWERS.items():
    follow(key, rule(base_rank))
r_min = c3.number_input("r min", 1, 256, help="No matrix gets a lower rank.", **kept("r_min", 2))
r_max = c4.number_input("r max", 1, 1024, help="No matrix gets a higher rank (nor more than min(d_out, d_in)).",
                        **kept("r_max", 32))
c5, c6 = st.columns([1, 3])
kind = c5.radio("Budget as", ["total rank", "trainable parameters"], **kept("budget_kind", "total rank"),
                help="Total rank: sum of r over matrices. Parameters: sum of r^2 + r d_out (S and B while B trains).")
multiple = c5.selectbox("Ranks in multiples of", [1, 2, 4, 8], **kept("multiple", 1))
budget_kind = "rank" if kind == "total rank" else "params"
try:
    low, high = budget_bounds(report, budget_kind, int(r_min), int(r_max), multiple)
except lc.LamdaError as error:
    st.error(f"{error}. Lower r min or raise r max.")
    st.stop()
uniform = {"rank": base_rank * matrices,
           "params": sum(lamda_parameters(base_rank, m.d_out) for m in report.matrices)}[budget_kind]
key = "budget_rank" if budget_kind == "rank" else "budget_params"
follow(key, uniform)
step = multiple if budget_kind == "rank" else max(1, (high - low) // 200)
set_kept(key, min(high, max(low, low + (st.session_state.get(f"keep_{key}", uniform) - low) // step * step)))
label = "Budget (total rank)" if budget_kind == "rank" else "Budget (trainable adapter parameters)"
budget = c6.slider(
    label,
    low,
    high,
    step=step,
    **kept(key, uniform),
    help=f"Feasible with r in [{int(r_min)}, {int(r_max)}] in multiples of {multiple}: {low:,} to {high:,}.",
)
try:
    importance = training_file_importance(source) if strategy == "gradient" else None
    allocation = lc.allocate_ranks(report, base_rank, budget=budget, strategy=strategy, r_min=int(r_min),
                                   r_max=int(r_max), multiple=multiple, budget_kind=budget_kind, importance=importance)
except lc.LamdaError as error:
    st.error(user_message(error))
    st.stop()

query = lc.CostQuery(source, rank=base_rank, batch_size=16, seq_len=128, task=task, dtype=dtype)
costs = {m.name: lc.estimate_costs(query.replace(method=m.name, rank_pattern=allocation.rank_pattern
                                                 if m.needs_rank_pattern else None)) for m in (LAMDA, LAMDA_PLUS, LORA)}
m1, m2 = st.columns(2)  # two by two: four in a row cut their labels off on a 1024 px screen
m3, m4 = st.columns(2)
neutral = {"delta_color": "off", "delta_arrow": "off"}  # a difference, neither good nor bad
m1.metric("Total rank", allocation.total_rank, f"{allocation.total_rank - base_rank * matrices:+d} vs uniform r0",
          help="Sum of the per-matrix ranks r_i.", **neutral)
m2.metric("LaMDA++ adapter params (start)", f"{allocation.parameters:,}",
          f"{allocation.parameters - allocation.uniform_parameters:+,} vs uniform", help="sum of r_i^2 + r_i d_out: "
          "S and B, before B starts freezing.", **neutral)
m3.metric(
    "Averaged over freezing",
    f"{costs['lamda++'].trainable_average - (costs['lamda++'].trainable_start - costs['lamda++'].adapter_start):,.0f}",
    f"LoRA: {costs['lora'].adapter_start:,}",
    help="Adapter parameters in the optimizer, averaged over the "
    "steps: B's columns freeze one by one over the first eta T steps.",
    **neutral,
)
m4.metric(
    "Training memory (batch 16 x 128)",
    f"{costs['lamda++'].total / 2**20:,.1f} MiB",
    f"{(costs['lamda++'].total - costs['lamda'].total) / 2**20:+.2f} MiB vs uniform LaMDA",
    delta_color="inverse",
)

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
if choices.RECOMMENDED_ALLOCATION == "uniform" and st.button(f"Use uniform LaMDA r={base_rank} (recommended)",
                                                             key="use_uniform", type="primary"):
    set_kept("run_method", "lamda")
    set_kept("run_rank", base_rank)
    st.session_state.pop("allocation", None)
    st.success(f"The Fine-tune page will train uniform LaMDA at rank {base_rank}.")
