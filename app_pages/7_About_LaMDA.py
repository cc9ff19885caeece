"""What LaMDA and LaMDA++ do, in one screen: the layer to scale and the freezing schedule."""
import streamlit as st

from lamda_core import figures
from studio_ui.common import page_setup, sidebar

page_setup("About LaMDA")
sidebar()
st.title("About LaMDA")
st.markdown(r"""
LaMDA adapts a frozen projection $W$ with a low-dimensional path

$$y = W x + s\,B\,S\,A\,x,\qquad s = \alpha / r$$

* **A** ($r \times d_\text{in}$) is frozen from the start: autograd keeps only the $r$-wide $A x$,
  never the input $x$, which is where the activation memory goes.
* **S** ($r \times r$) always trains.
* **B** ($d_\text{out} \times r$) trains at first and freezes column by column, largest singular
  direction first, until it is fully frozen after a fraction $\eta$ of the steps.

""")
left, right = st.columns(2)
with left:
    st.markdown("**One adapted projection, to scale** (MiniLM's 384-wide attention output, r = 8)")
    st.plotly_chart(figures.layer_figure(384, 384, 8), width="stretch")
with right:
    st.markdown(r"**Freezing B** over $T = 300$ steps with $\eta = 0.3$: linear (default) freezes "
                r"$k(t) = \min(r, \lfloor r t / t_i \rfloor)$ columns, $t_i = \lceil \eta T \rceil$")
    st.plotly_chart(figures.freezing_figure(8, 300, 0.3), width="stretch")
st.markdown(r"""
**LaMDA++** gives each matrix its own rank from the normalized singular-value spectrum of its
pretrained weights: flat spectra get more rank, concentrated ones less.

Azizi, Kundu, Pedram, *LaMDA: Large Model Fine-Tuning via Spectrally Decomposed Low-Dimensional
Adaptation*, EMNLP 2024 Findings (arXiv 2406.12832).
""")
