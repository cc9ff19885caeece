"""Plotly figures over lamda_core results: plain functions, usable in the app or a notebook."""
from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from .costs.memory import CostBreakdown
from .spectra.allocation import Allocation
from .spectra.spectrum import SpectrumReport

if TYPE_CHECKING:
    from .use.analysis import UpdateReport

SCALARS = {"stable_rank": "stable rank ||W||_F^2 / sigma_1^2", "effective_rank": "effective rank exp(H)",
           "sigma_1": "largest singular value sigma_1", "frobenius": "Frobenius norm ||W||_F",
           "condition_number": "condition number sigma_1 / sigma_min", "energy_at_base_rank": "energy E(r0)",
           "alpha": "power-law exponent alpha of the eigenvalues sigma_i^2 (WeightWatcher's fit)",
           "alpha_weighted": "alpha x log10(lambda_max)", "log_spectral_norm": "log10(lambda_max) = 2 log10(sigma_1)"}


def matrix_label(layer: int | None, kind: str) -> str:
    return f"L{layer} {kind}" if layer is not None else kind


def spectra_figure(report: SpectrumReport, kinds: list[str] | None = None, layers: list[int] | None = None,
                   x_axis: str = "index", y_axis: str = "normalized", log_y: bool = False) -> go.Figure:
    """One line per matrix: sigma_i / sigma_1 (y_axis="normalized") or E(k) ("energy"), against
    i (x_axis="index") or i / min(d_out, d_in) ("relative")."""
    figure = go.Figure()
    for m in report.matrices:
        if (kinds and m.kind not in kinds) or (layers and m.layer not in layers):
            continue
        x = m.relative_index() if x_axis == "relative" else np.arange(1, len(m.sigma) + 1)
        y = m.energy() if y_axis == "energy" else m.normalized()
        figure.add_trace(go.Scatter(
            x=x, y=y, mode="lines", name=matrix_label(m.layer, m.kind),
            customdata=np.stack([np.arange(1, len(m.sigma) + 1), m.sigma], axis=1),
            hovertemplate=f"<b>{m.name}</b> ({m.d_out}x{m.d_in})<br>i=%{{customdata[0]}}"
                          "<br>sigma_i=%{customdata[1]:.4g}<br>y=%{y:.4f}<extra></extra>"))
    figure.update_layout(
        xaxis_title="singular value index i" if x_axis != "relative" else "relative index i / min(d_out, d_in)",
        yaxis_title="normalized singular value sigma_i / sigma_1" if y_axis != "energy" else "cumulative energy E(k)",
        legend_title="matrix", margin=dict(l=10, r=10, t=30, b=10))
    if log_y:
        figure.update_yaxes(type="log")
    return figure


def layer_kind_grid(matrices, value) -> tuple[list[int], list[str], np.ndarray]:
    """(layers, kinds, values (layers, kinds)) of ``value(m)`` over the matrices that belong to a
    layer (anything with .layer and .kind); NaN where a value is missing or None."""
    rows = [m for m in matrices if m.layer is not None]
    layers, kinds = sorted({m.layer for m in rows}), list(dict.fromkeys(m.kind for m in rows))
    values = np.full((len(layers), len(kinds)), np.nan)
    for m in rows:
        result = value(m)
        values[layers.index(m.layer), kinds.index(m.kind)] = np.nan if result is None else result
    return layers, kinds, values


def scalar_grid(report: SpectrumReport, scalar: str, base_rank: int = 8) -> tuple[list[int], list[str], np.ndarray]:
    """(layers, kinds, values (layers, kinds)) of a per-matrix scalar; NaN where undefined."""
    if scalar not in SCALARS:
        raise ValueError(f"unknown scalar {scalar!r}; choose one of {tuple(SCALARS)}")
    if scalar == "energy_at_base_rank":
        return layer_kind_grid(report.matrices, lambda m: m.energy_at(min(base_rank, len(m.sigma))))
    return layer_kind_grid(report.matrices, lambda m: getattr(m, scalar))


def layer_heatmap(grid: tuple[list[int], list[str], np.ndarray], name: str, title: str) -> go.Figure:
    """A layers x kinds heatmap of a layer_kind_grid; ``name`` on the colour bar, ``title`` above."""
    layers, kinds, values = grid
    figure = go.Figure(go.Heatmap(z=values, x=kinds, y=layers, colorscale="Viridis", colorbar_title=name,
                                  hovertemplate="layer %{y}, %{x}<br>" + title + " = %{z:.4g}<extra></extra>"))
    figure.update_layout(xaxis_title="matrix kind", yaxis_title="layer", title=title,
                         margin=dict(l=10, r=10, t=40, b=10))
    figure.update_yaxes(autorange="reversed", dtick=1)
    return figure


def heatmap_figure(report: SpectrumReport, scalar: str = "stable_rank", base_rank: int = 8) -> go.Figure:
    """Layers x kinds heatmap of one per-matrix scalar."""
    title = SCALARS[scalar].replace("r0", f"r0={base_rank}")
    return layer_heatmap(scalar_grid(report, scalar, base_rank), "<br>".join(textwrap.wrap(title, 14)), title)


def allocation_figure(allocation: Allocation, labels: dict[str, str] | None = None) -> go.Figure:
    """Allocated rank per matrix against the uniform base rank, with the energy each keeps."""
    names = list(allocation.ranks)
    x = [labels.get(n, n) if labels else n for n in names]
    figure = go.Figure()
    figure.add_trace(go.Bar(
        x=x, y=[allocation.ranks[n] for n in names], name=f"LaMDA++ ({allocation.strategy})",
        customdata=[[allocation.energy_kept[n], allocation.uniform_energy[n]] for n in names],
        hovertemplate="%{x}<br>rank %{y}<br>energy kept %{customdata[0]:.3f}"
                      "<br>uniform keeps %{customdata[1]:.3f}<extra></extra>"))
    figure.add_trace(go.Scatter(x=x, y=[allocation.base_rank] * len(names), mode="lines",
                                name=f"uniform LaMDA (r={allocation.base_rank})", line=dict(dash="dash")))
    figure.update_layout(xaxis_title="matrix", yaxis_title="rank r", barmode="group",
                         margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.1))
    return figure


COST_LABELS = {"weights": "weights", "gradients": "gradients", "optimizer": "optimizer state",
               "activations_base": "activations (base)", "activations_adapter": "activations (adapter path)",
               "logits": "logits"}


def cost_figure(breakdowns: dict[str, CostBreakdown], unit: float = 2 ** 20) -> go.Figure:
    """Stacked training-memory bars, one per label (e.g. method, or "LaMDA estimated"), in MiB."""
    figure = go.Figure()
    labels = list(breakdowns)
    for component, name in COST_LABELS.items():
        figure.add_trace(go.Bar(x=labels, y=[getattr(breakdowns[k], component) / unit for k in labels], name=name,
                                hovertemplate="%{x}<br>" + name + ": %{y:.2f} MiB<extra></extra>"))
    figure.update_layout(barmode="stack", xaxis_title="method", yaxis_title="training memory (MiB)",
                         legend_title="component", margin=dict(l=10, r=10, t=30, b=10))
    return figure


TRAINING_SERIES = {"loss": "training loss", "eval_loss": "eval loss", "eval_accuracy": "eval accuracy",
                   "eval_f1": "eval macro F1", "eval_perplexity": "eval perplexity",
                   "trainable_parameters": "trainable parameters", "adapter_parameters": "adapter parameters",
                   "learning_rate": "learning rate"}


def training_figure(runs: dict[str, list[dict]], series: list[str]) -> go.Figure:
    """Curves over optimizer steps: one line per (run, series) from metrics.jsonl rows."""
    figure = go.Figure()
    for run_name, rows in runs.items():
        for key in series:
            points = [(row["step"], row[key]) for row in rows if key in row]
            if points:
                name = TRAINING_SERIES.get(key, key) + (f" · {run_name}" if len(runs) > 1 else "")
                figure.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], name=name,
                                            mode="lines+markers" if key.startswith("eval") else "lines"))
    figure.update_layout(
        xaxis_title="optimizer step",
        yaxis_title=" / ".join(TRAINING_SERIES.get(k, k) for k in series),
        margin=dict(l=10, r=10, t=30, b=10),
        legend=dict(orientation="h", y=1.12),
    )
    if series and all(key in FRACTION_SERIES for key in series):
        figure.update_yaxes(range=[0, 1.02])  # a share: its whole range, even with one evaluation
    return figure


FRACTION_SERIES = ("eval_accuracy", "eval_f1")


def layer_figure(d_in: int = 384, d_out: int = 384, rank: int = 8) -> go.Figure:
    """The LaMDA path of one projection drawn to scale: A (r x d_in, frozen), S (r x r, trained),
    B (d_out x r, trained then frozen) beside the frozen W (d_out x d_in)."""
    # (label, width, height, colour, where the label goes): A's below it and B's to its left, so
    # that no label overlaps another or runs past the figure's edge at narrow widths
    blocks = [
        ("W (frozen)", d_in, d_out, "#c9d3e6", "above"),
        ("A: r x d_in,<br>frozen", d_in, rank, "#9aa9c4", "below"),
        ("S: r x r,<br>trained", rank, rank, "#2f6fde", "above"),
        ("B: d_out x r,<br>trained, then frozen", rank, d_out, "#e39b2f", "left"),
    ]
    figure, x = go.Figure(), 0.0
    gap = 0.08 * max(d_in, d_out)
    for name, width, height, color, where in blocks:
        figure.add_shape(type="rect", x0=x, x1=x + width, y0=0, y1=height, fillcolor=color, line=dict(color="#1d2a44"))
        place = {"above": dict(x=x + width / 2, y=height, yanchor="bottom"),
                 "below": dict(x=x + width / 2, y=0, yanchor="top"),
                 "left": dict(x=x + width, y=height, yanchor="bottom", xanchor="right")}[where]
        figure.add_annotation(text=name.replace(": ", "<br>", 1), showarrow=False, **place)
        x += width + gap
    figure.update_xaxes(visible=False, range=[-gap, x])
    figure.update_yaxes(visible=False, range=[-0.3 * max(d_in, d_out), 1.35 * max(d_in, d_out)], scaleanchor="x")
    figure.update_layout(margin=dict(l=10, r=10, t=10, b=10), height=320,
                         title=dict(text=f"d_in = {d_in}, d_out = {d_out}, r = {rank}", y=0.05))
    return figure


def freezing_figure(rank: int = 8, total_steps: int = 300, fraction: float = 0.3) -> go.Figure:
    """Trainable columns of B against the optimizer step, for both freeze rules:
    linear k(t) = min(r, floor(r t / t_i)) frozen, t_i = ceil(eta T); grad-mask-stepwise one
    column every t_i steps."""
    from .adapter.freezing import frozen_column_count

    figure = go.Figure()
    steps = list(range(total_steps + 1))
    for rule in ("linear", "grad-mask-stepwise"):
        figure.add_trace(go.Scatter(x=steps, y=[rank - frozen_column_count(rule, rank, t, total_steps, fraction)
                                                for t in steps], name=rule, mode="lines", line_shape="hv"))
    figure.update_layout(xaxis_title="optimizer step t", yaxis_title="trainable columns of B",
                         margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.12))
    figure.update_yaxes(range=[0, rank + 0.5])
    return figure


TEXT_POSITIONS = ("top center", "bottom center", "middle right", "middle left")


def pareto_figure(points: list[dict], x: str = "adapter_average", metric: str = "accuracy") -> go.Figure:
    """``metric`` against a cost ``x`` (runs/compare.py: COST_AXES, METRIC_LABELS), one line
    per method through its points, labelled by point["label"] (or its rank), and the Pareto front
    (no other point is both cheaper and better) as a dashed line through ringed markers. Accuracy
    and F1 are shown in %; points lacking x or the metric are left out."""
    from .runs.compare import COST_AXES, LOG_AXES, METRIC_LABELS, pareto_front

    scale = 100 if metric in ("accuracy", "f1") else 1
    points = [p for p in points if p.get(x) is not None and p.get(metric) is not None]
    figure = go.Figure()
    for method in dict.fromkeys(p["method"] for p in points):
        mine = sorted((p for p in points if p["method"] == method), key=lambda p: p[x])
        figure.add_trace(go.Scatter(
            x=[p[x] for p in mine], y=[scale * p[metric] for p in mine], mode="lines+markers+text", name=method,
            text=[p.get("label") or f"r={p['rank']}" for p in mine],
            textposition=TEXT_POSITIONS[len(figure.data) % len(TEXT_POSITIONS)],  # neighbours' labels apart
            hovertemplate=f"<b>{method}</b> %{{text}}<br>{metric} %{{y:.4g}}<br>x=%{{x:,.4g}}<extra></extra>"))
    front = sorted((points[i] for i in pareto_front(points, x, metric)), key=lambda p: p[x])
    figure.add_trace(go.Scatter(
        x=[p[x] for p in front], y=[scale * p[metric] for p in front], mode="lines+markers", name="Pareto front",
        line=dict(dash="dash", color="grey"), marker=dict(size=16, symbol="circle-open", color="black"),
        hoverinfo="skip"))
    figure.update_layout(xaxis_title=COST_AXES[x], yaxis_title=METRIC_LABELS[metric], legend_title="method",
                         margin=dict(l=10, r=10, t=30, b=10))
    if x in LOG_AXES:
        figure.update_xaxes(type="log")
    return figure


def update_heatmap(report: "UpdateReport", metric: str = "relative_norm") -> go.Figure:
    """Layers x kinds heatmap of one metric of a run's learned updates (analysis.METRICS)."""
    from .use.analysis import METRICS

    grid = layer_kind_grid(report.matrices, lambda m: m.metric(metric))
    figure = layer_heatmap(grid, metric, METRICS[metric])
    figure.update_layout(title=f"{report.method}: {METRICS[metric]}")
    return figure


def update_overlay_figure(reports: dict[str, "UpdateReport"], matrix: str) -> go.Figure:
    """One matrix across runs: W's normalized spectrum sigma_i / sigma_1 before (once, dashed)
    and after each run, and each run's update singular values (right axis)."""
    figure = go.Figure()
    for number, (label, report) in enumerate(reports.items()):
        found = next((m for m in report.matrices if m.name == matrix), None)
        if found is None:
            raise ValueError(f"run {label} did not adapt {matrix}")
        index = list(range(1, len(found.spectrum_after) + 1))
        if number == 0:
            figure.add_trace(go.Scatter(x=index, y=found.spectrum_before, name="W before", line=dict(dash="dash")))
        figure.add_trace(go.Scatter(x=index, y=found.spectrum_after, name=f"{label}: W after"))
        figure.add_trace(go.Scatter(x=list(range(1, len(found.update_sigma) + 1)), y=found.update_sigma,
                                    name=f"{label}: sigma_i(dW)", yaxis="y2", mode="markers+lines",
                                    line=dict(dash="dot")))
    figure.update_layout(title=matrix, xaxis_title="index i", yaxis_title="sigma_i / sigma_1 of W",
                         yaxis2=dict(title="sigma_i(dW)", overlaying="y", side="right", type="log"),
                         # the legend between the title and the plot: plotly puts a horizontal legend
                         # over the x axis title by default
                         legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0),
                         margin=dict(l=10, r=10, t=90, b=10))
    return figure


def probability_figure(text: str, probabilities: dict[str, list[float]], label_names: list[str]) -> go.Figure:
    """One sentence's label probabilities, a bar group per label with one bar per run
    (``probabilities``: {run: [p(label) for label in label_names]})."""
    figure = go.Figure([go.Bar(x=label_names, y=[100 * p for p in probs], name=run,
                               text=[f"{100 * p:.1f}%" for p in probs], textposition="outside")
                        for run, probs in probabilities.items()])
    short = text if len(text) <= 90 else text[:87] + "..."
    figure.update_layout(barmode="group", title=short, yaxis_title="probability (%)", yaxis_range=[0, 110],
                         legend_title="run", margin=dict(l=10, r=10, t=40, b=10), height=300)
    return figure


def confusion_figure(confusion: list[list[int]], label_names: list[str], title: str = "") -> go.Figure:
    """Heatmap of C[t][p] (rows: true label, columns: predicted), counts written in the cells."""
    figure = go.Figure(go.Heatmap(z=confusion, x=label_names, y=label_names, colorscale="Blues",
                                  text=[[str(v) for v in row] for row in confusion], texttemplate="%{text}",
                                  colorbar_title="examples",
                                  hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>"))
    figure.update_layout(title=title, xaxis_title="predicted label", yaxis_title="true label",
                         yaxis_autorange="reversed", margin=dict(l=10, r=10, t=40, b=10))
    return figure
