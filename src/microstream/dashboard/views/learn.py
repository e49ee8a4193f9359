"""Learn page: what each feature means, next to its live value."""

from __future__ import annotations

import streamlit as st

from microstream.dashboard import components as ui
from microstream.dashboard import data, learn

st.title("Learn market microstructure")
st.caption(
    "Each feature below is computed live by the engine. Read what it means, then watch "
    "its value change."
)

TEXTS, TEXTS_SOURCE = learn.load_texts()


@st.fragment(run_every=ui.REFRESH_S)
def learn_panels() -> None:
    """Feature explanations with their live values and commentary."""
    ctx = ui.engine_context()
    row: dict[str, object] = {}
    if ctx is not None:
        try:
            latest = data.state(ctx.base, ctx.exchange, ctx.symbol).get("latest") or {}
            row = latest.get("features") or {}
        except data.EngineOffline as exc:
            ui.offline_panel(ctx.base, str(exc))
    for name, text in TEXTS.items():
        with st.container(border=True):
            head, value = st.columns([3, 1])
            head.markdown(f"#### `{name}`")
            value.metric(name, ui.number(row.get(name), "{:,.6g}"), label_visibility="collapsed")
            sentence = learn.commentary(name, row)
            if sentence:
                st.info(sentence)
            st.markdown(text)
    st.caption(f"Texts from {TEXTS_SOURCE}.")


learn_panels()
