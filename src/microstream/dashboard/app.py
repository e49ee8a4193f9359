"""MicroStream dashboard: a thin router over the pages in ``views/``.

Run with ``microstream dashboard`` (or ``streamlit run`` on this file); the
engine's API URL comes from ``MICROSTREAM_API_URL``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from microstream.dashboard import components as ui

HERE = Path(__file__).parent

st.set_page_config(page_title="MicroStream", page_icon=":material/monitoring:", layout="wide")

page = st.navigation(
    [
        st.Page(
            HERE / "views" / "live.py", title="Live", icon=":material/show_chart:", default=True
        ),
        st.Page(HERE / "views" / "heatmap.py", title="Heatmap", icon=":material/grid_on:"),
        st.Page(HERE / "views" / "health.py", title="Health", icon=":material/monitor_heart:"),
        st.Page(HERE / "views" / "learn.py", title="Learn", icon=":material/school:"),
    ]
)
ui.no_fade()
ui.sidebar()
page.run()
