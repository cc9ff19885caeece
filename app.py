"""LaMDA Studio: the page router. Run with `./studio app` (streamlit run app.py)."""
from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parent / "app_pages"  # not "pages/", which Streamlit would list on its own
# The local logo as favicon before navigation runs: otherwise the default page's material icon
# becomes the favicon, fetched from fonts.gstatic.com (the app must work offline).
st.set_page_config(page_title="LaMDA Studio", page_icon=str(PAGES.parent / "assets" / "logo.svg"), layout="wide")

navigation = st.navigation([
    st.Page(PAGES / "0_Model.py", title="Model", icon=":material/memory:", url_path="Model", default=True),
    st.Page(PAGES / "1_Spectrum.py", title="Spectrum", icon=":material/ssid_chart:", url_path="Spectrum"),
    st.Page(PAGES / "2_Rank_budget.py", title="Rank budget", icon=":material/tune:", url_path="Rank_budget"),
    st.Page(PAGES / "3_Costs.py", title="Costs", icon=":material/stacked_bar_chart:", url_path="Costs"),
    st.Page(PAGES / "4_Fine_tune.py", title="Fine-tune", icon=":material/model_training:", url_path="Fine_tune"),
    st.Page(PAGES / "5_Runs.py", title="Runs", icon=":material/history:", url_path="Runs"),
    st.Page(PAGES / "8_Try_and_evaluate.py", title="Try & evaluate", icon=":material/science:",
            url_path="Try_and_evaluate"),
    st.Page(PAGES / "6_Compare.py", title="Compare", icon=":material/compare_arrows:", url_path="Compare"),
    st.Page(PAGES / "7_About_LaMDA.py", title="About LaMDA", icon=":material/info:", url_path="About_LaMDA"),
])
navigation.run()
