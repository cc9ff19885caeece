"""One run as the Fine-tune and Runs pages show it: state, progress and ETA, why it waits or
failed, Stop, curves, downloads and merged export."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from lamda_core import LamdaError, figures
from lamda_core.runs.folder import ACTIVE_STATES, RunFolder, list_runs
from lamda_core.training.metrics import percent_text
from lamda_core.use.export import export_merged
from studio_ui.common import model_label
from studio_ui.state import kept


def data_label(train_data: str) -> str:
    return Path(train_data).name if ("/" in train_data or "." in train_data) else f"{train_data} (built in)"


def run_panel(folder: Path, charts: bool = True, dismiss=None) -> None:
    """Everything about one run; widget keys carry the run's name, so several panels coexist.
    ``dismiss``: called by the panel's Dismiss button (Fine-tune), none when not given."""
    run = RunFolder(folder)
    status, metrics, config = run.status(), run.metrics(), run.config
    state, total = status["state"], status.get("total_steps") or config.max_steps or 1
    interrupted = state in ACTIVE_STATES and not run.is_live()  # its trainer was killed
    step = metrics[-1]["step"] if metrics else 0
    remaining = metrics[-1].get("remaining") if metrics else None
    st.markdown(f"**{folder.name}**: {state} · {config.method}, rank {config.rank_label}, "
                f"{data_label(config.train_data)}, model {model_label(config.source)}")
    eta = f", about {remaining:.0f} s left" if remaining is not None and state == "running" else ""
    st.progress(min(1.0, step / total), text=f"step {step} / {total}{eta}")
    if state == "queued":
        ahead = run.waiting_for()
        st.caption("Waiting: one run trains at a time per runs folder. " +
                   (f"Ahead of it: {', '.join(ahead)}." if ahead else "It starts in a moment."))
    if state in ("failed", "stopped") and status.get("reason"):
        (st.error if state == "failed" else st.info)(f"{state.capitalize()}: {status['reason']}")
    if interrupted:
        st.warning("Its trainer process is gone (killed or the machine restarted); Resume continues from its "
                   "last checkpoint.")
    actions(run, state, interrupted, dismiss)
    if charts and metrics:
        curves(folder, config.task, metrics, step)
    if state == "finished":
        peak_memory(run)
        speed(run)
        downloads(folder)


def actions(run: RunFolder, state: str, interrupted: bool, dismiss) -> None:
    """Stop (queued or training), Resume (stopped, failed or killed; the checks of `lamda resume`)
    and Dismiss (when ``dismiss`` is given and the run is not active), in one row."""
    folder = run.path
    buttons = st.container(horizontal=True)  # each button as wide as its label, wrapping on narrow screens
    if state in ("queued", "running") and not interrupted and buttons.button(
            "Stop", key=f"stop-{folder.name}", help="A running run checkpoints and stops at its next step "
                                                     "(Resume continues it); a queued run is removed from the queue."):
        run.request_stop()
        st.rerun()  # the whole page: it keeps following the run until it has stopped
    if (state in ("stopped", "failed") or interrupted) and buttons.button(
            "Resume", key=f"resume-{folder.name}",
            help="Continue from the last checkpoint, with the checks of `lamda resume` (the config unchanged, "
                 "the checkpoint intact)."):
        try:
            run.start(warm=True)
            st.rerun()  # the whole page, which then follows the resumed run
        except LamdaError as error:
            st.error(f"Cannot resume {folder.name}: {error}")
    if dismiss is not None and state not in ("queued", "running", "stopping") and buttons.button(
            "Dismiss", key=f"dismiss-{folder.name}", help="Remove it from this page; it stays on the Runs page."):
        dismiss(folder)
        st.rerun()


def curves(folder: Path, task: str, metrics: list[dict], step: int) -> None:
    """Loss, the eval metric and the trainable parameters over steps; the last eval metric, an
    accuracy with its number of validation examples and the decimals that number supports."""
    quality = "eval_accuracy" if task == "classification" else "eval_perplexity"
    c1, c2, c3 = st.columns(3)
    for column, series in ((c1, ["loss", "eval_loss"]), (c2, [quality]), (c3, ["trainable_parameters"])):
        column.plotly_chart(figures.training_figure({folder.name: metrics}, series), width="stretch",
                            key=f"{folder.name}-{series[0]}-{step}")
    last_eval = [row for row in metrics if quality in row]
    if last_eval and quality == "eval_accuracy" and last_eval[-1].get("eval_examples"):
        examples = last_eval[-1]["eval_examples"]
        st.metric(f"validation accuracy, {examples:,} examples", percent_text(last_eval[-1][quality], examples),
                  help="The share of validation examples classified right, with the decimals their number "
                       "supports (one example moves it by 100 / examples points).")
    elif last_eval:
        st.metric(quality.replace("eval_", "validation "), f"{last_eval[-1][quality]:.4g}",
                  help="accuracy: share of validation examples classified right" if task == "classification"
                  else "perplexity: exp(mean validation loss per token)")


@st.cache_data(show_spinner=False, max_entries=64)
def _estimated_peak_mib(config_json: str) -> float | None:
    from lamda_core import CostQuery, estimate_costs
    from lamda_core.runs.config import TrainConfig

    try:
        peak = estimate_costs(CostQuery.from_train_config(TrainConfig.from_json(config_json))).peak
        return None if peak is None else peak / 2 ** 20
    except LamdaError:
        return None


def peak_memory(run: RunFolder) -> None:
    """The run's measured peak memory beside the estimate the Fine-tune form showed for it."""
    summary = run.summary() or {}
    if summary.get("peak_memory_mib") is None:
        return
    estimate = _estimated_peak_mib(run.config_text())
    st.caption(f"Measured peak memory: **{summary['peak_memory_mib']:,.0f} MiB** ({summary.get('peak_memory_kind')}, "
               "loading and evaluation included)" + (f"; estimated training step peak: {estimate:,.0f} MiB"
                                                     if estimate is not None else ""))


def speed(run: RunFolder) -> None:
    """How soon the run trained after Start, and how fast (the trainer's summary)."""
    summary = run.summary() or {}
    if summary.get("startup_seconds") is None:
        return
    st.caption(f"First step **{summary['startup_seconds']:.1f} s** after Start (time queued behind other runs "
               f"left out); **{summary['tokens_per_second']:,.0f} tokens/s** while training")


def downloads(folder: Path) -> None:
    row = st.container(horizontal=True)
    names = [path.name for path in RunFolder(folder).saved_folders()]
    for name in names:
        row.download_button(f"Download {name} (zip)", RunFolder(folder).download(name).read_bytes(),
                            f"{folder.name}-{name}.zip", key=f"download-{folder.name}-{name}")
    message_key = f"merged-{folder.name}"
    if row.button("Export a merged model", key=f"merge-{folder.name}",
                  help="The base with the trained update folded into its weights, loadable by "
                       "transformers' from_pretrained."):
        try:
            merged = export_merged(folder)
            st.session_state[message_key] = ("success", f"Merged model written to {folder.name}/{merged.name} "
                                                        "in the runs folder")
        except LamdaError as error:
            st.session_state[message_key] = ("error", str(error))
    if message_key in st.session_state:  # kept across the page's refreshes
        kind, text = st.session_state[message_key]
        (st.success if kind == "success" else st.error)(text)


@st.cache_data(show_spinner=False, max_entries=16)
def _update_report(folder: str, finished_at: float, intruder_k: int = 10, intruder_threshold: float = 0.5):
    """analyze_run, cached per run folder, finish time (a re-run folder gets a new report) and
    intruder settings."""
    from lamda_core.use.analysis import analyze_run

    return analyze_run(folder, intruder_k=intruder_k, intruder_threshold=intruder_threshold)


def intruder_settings() -> tuple[int, float]:
    """(k, threshold) of the intruder count, kept across pages; the paper's by default."""
    from lamda_core.use.analysis import INTRUDER_K, INTRUDER_THRESHOLD

    i1, i2 = st.columns(2)
    k = i1.number_input("Intruders among the top k singular vectors", 1, 64, **kept("intruder_k", INTRUDER_K),
                        help="k of the intruder count (the paper, arXiv 2410.21228: 10).")
    threshold = i2.number_input("Intruder threshold (|cosine|)", 0.05, 0.95, step=0.05, format="%.2f",
                                **kept("intruder_threshold", INTRUDER_THRESHOLD),
                                help="A singular vector of the fine-tuned W' is an intruder when its |cosine| with "
                                     "every singular vector of W stays below this.")
    return int(k), float(threshold)


def update_analysis(folder: Path, root: Path) -> None:
    """What fine-tuning changed in a finished run: a heatmap of one metric per matrix, one matrix's
    spectra overlaid across finished runs of the same model, CSV / JSON downloads."""
    from lamda_core.use.analysis import METRICS

    run = RunFolder(folder)
    if run.status()["state"] != "finished":
        st.caption("The learned update can be analysed once the run has finished.")
        return
    if not st.toggle("Analyse the learned update (loads the base and the fine-tuned model)", key="analyze"):
        return
    intruder_k, threshold = intruder_settings()
    with st.spinner("Comparing every adapted matrix with the base…"):
        report = _update_report(str(folder), RunFolder(folder).changed_at("summary"), intruder_k, threshold)
    st.caption(f"Intruder dimensions: **{report.total_intruders}** in "
               f"{sum(m.intruders > 0 for m in report.matrices)} of {len(report.matrices)} matrices (top {intruder_k} "
               f"singular vectors of each fine-tuned matrix, |cos| < {threshold:g} with all of the base's).")
    metric = st.selectbox("Metric", list(METRICS), format_func=METRICS.get, key="update_metric",
                          help="dW = W after - W before per matrix. ||dW||_F/||W||_F: how far it moved; share in "
                               "top-r: ||U_r^T dW V_r||_F / ||dW||_F with W = U diag(sigma) V^T (1: dW only "
                               "rescales W's principal directions); effective rank: exp of the entropy of sigma(dW).")
    st.plotly_chart(figures.update_heatmap(report, metric), width="stretch", key=f"update-heatmap-{folder.name}")
    same_model = [p.name for p in list_runs(root) if p != folder and RunFolder(p).status()["state"] == "finished"
                  and RunFolder(p).config.source == run.config.source]
    c1, c2 = st.columns(2)
    matrix = c1.selectbox("Matrix", [m.name for m in report.matrices], key="update_matrix")
    others = c2.multiselect("Overlay finished runs of the same model", same_model, key="update_overlay")
    reports = {folder.name: report}
    with st.spinner("Analysing the other runs…"):
        for name in others:
            reports[name] = _update_report(str(root / name), RunFolder(root / name).changed_at("summary"),
                                           intruder_k, threshold)
    try:
        st.plotly_chart(
            figures.update_overlay_figure(reports, matrix), width="stretch", key=f"update-overlay-{folder.name}"
        )
    except ValueError as error:  # an overlaid run did not adapt this matrix
        st.warning(str(error))
    d1, d2 = st.columns(2)
    d1.download_button("Download CSV", report.to_csv(), file_name=f"{folder.name}-update.csv", key="update_csv")
    d2.download_button("Download JSON", report.to_json(), file_name=f"{folder.name}-update.json", key="update_json")
