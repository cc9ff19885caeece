"""Normalized singular-value spectra of every adaptable matrix."""

import pandas as pd
import streamlit as st

from lamda_core import figures
from lamda_core.models.embedded_llm import QUANTIZATION_NOTE
from lamda_core.models.embedded_llm import SOURCE_NAME as EMBEDDED_LLM
from lamda_core.spectra.spectrum import iter_kinds
from studio_ui.common import model_label, page_setup, report_or_stop, sidebar
from studio_ui.state import kept, kept_choice

page_setup("Spectrum")
source, task, dtype = sidebar()
st.title("Spectrum")
top_k = st.number_input(
    "Singular values per matrix (0 = all; use 64 for big models)",
    0,
    4096,
    step=16,
    **kept("spectrum_top_k", 0),
    help="The k largest singular values of each matrix (randomized SVD "
    "for big matrices); enough for LaMDA++ allocation, faster than a full SVD.",
)
report = report_or_stop(source, top_k or None)
st.caption(
    f"{len(report.matrices)} matrices of {model_label(report.source)}; {report.cache_hits} read from the disk cache."
)
if source == EMBEDDED_LLM:
    st.info(QUANTIZATION_NOTE)

left, right = st.columns(2)
with left:
    scalar = st.selectbox("Heatmap of", list(figures.SCALARS), format_func=figures.SCALARS.get,
                          **kept_choice("heat_scalar", list(figures.SCALARS), next(iter(figures.SCALARS))),
                          help="stable rank = ||W||_F^2 / sigma_1^2; effective rank = exp(entropy of sigma_i / "
                               "sum sigma); E(r0) = sum_{i<=r0} sigma_i^2 / sum sigma_i^2, the energy a rank-r0 "
                               "path can reach.")
    base_rank = st.number_input("r0 for E(r0)", 1, 256, **kept("heat_r0", 8),
                                help="E(k) = sum_{i<=k} sigma_i^2 / sum_i sigma_i^2: the share of W's squared "
                                     "Frobenius norm in its top k singular directions.")
    st.plotly_chart(figures.heatmap_figure(report, scalar, int(base_rank)), width="stretch")
with right:
    kinds = list(iter_kinds(report))
    layers = sorted({m.layer for m in report.matrices if m.layer is not None})
    chosen_kinds = st.multiselect("Kinds", kinds, **kept_choice("spec_kinds", kinds, kinds[:2]),
                                  help="q, k, v, o: attention projections (qkv: fused); ffn_in / ffn_out: the "
                                       "MLP's up and down projections (gate, up, down in Llama).")
    chosen_layers = st.multiselect("Layers", layers, **kept_choice("spec_layers", layers,
                                                                   [layers[0], layers[-1]] if layers else []))
    c1, c2, c3 = st.columns(3)
    x_axis = c1.radio("x", ["index", "relative"], format_func={"index": "i", "relative": "i / min(d)"}.get,
                      horizontal=True, **kept_choice("spec_x", ["index", "relative"], "index"))
    y_axis = c2.radio("y", ["normalized", "energy"], format_func={"normalized": "sigma_i / sigma_1",
                                                                  "energy": "E(k)"}.get, horizontal=True,
                      **kept_choice("spec_y", ["normalized", "energy"], "normalized"),
                      help="sigma_i / sigma_1: singular values scaled by the largest; E(k): cumulative energy.")
    log_y = c3.checkbox("log y", **kept("spec_log", False))
    st.plotly_chart(figures.spectra_figure(report, chosen_kinds, chosen_layers, x_axis, y_axis, log_y),
                    width="stretch")

table = pd.DataFrame(report.rows(base_rank=int(base_rank)))
st.dataframe(table, hide_index=True, width="stretch")
d1, d2 = st.columns(2)
d1.download_button("Download table (CSV)", table.to_csv(index=False), "spectra.csv", "text/csv")
d2.download_button("Download spectra (JSON)", report.to_json(), "spectra.json", "application/json")
