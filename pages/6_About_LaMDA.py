"""What LaMDA and LaMDA++ do, in one screen."""
import streamlit as st

st.title("About LaMDA")
st.markdown(r"""
LaMDA adapts a frozen projection $W$ with a low-dimensional path

$$y = W x + s\,B\,S\,A\,x,\qquad s = \alpha / r$$

* **A** ($r \times d_\text{in}$) is frozen from the start: autograd keeps only the $r$-wide $A x$,
  never the input $x$, which is where the activation memory goes.
* **S** ($r \times r$) always trains.
* **B** ($d_\text{out} \times r$) trains at first and freezes column by column, largest singular
  direction first, until it is fully frozen after a fraction $\eta$ of the steps.

**LaMDA++** gives each matrix its own rank from the normalized singular-value spectrum of its
pretrained weights: flat spectra get more rank, concentrated ones less.

Azizi, Kundu, Pedram, *LaMDA: Large Model Fine-Tuning via Spectrally Decomposed Low-Dimensional
Adaptation*, EMNLP 2024 Findings (arXiv 2406.12832).
""")
