"""Write the evaluation report: ``report.json``, ``report.md`` and PNG plots."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from microstream.evaluation.forecast_eval import MODEL, ORACLE, ForecastEvaluation
from microstream.evaluation.metrics import confusion, reliability
from microstream.models.labels import CLASSES

PLOTS = ("reliability.png", "confusion.png", "logloss_by_fold.png")
BASELINE_TEXT = (
    "`uniform` = 1/3 for each class (no data needed). "
    "The other baselines are fitted on each training fold only: `prior` = the training fold's class "
    "frequencies; `always_neutral` = argmax neutral, with neutral given the training fold's "
    "neutral share and up/down the rest split evenly; `sign_microprice` / `sign_ofi` = the sign "
    "of microprice − mid (of OFI), mapped to the class frequencies of training rows with the "
    "same sign (a 1-D calibration). `prior_evaluated_rows` = the class frequencies of the "
    "evaluated rows themselves, known only in hindsight (the done-criterion bar)."
)


def _ts(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _f(x: Any, digits: int = 4) -> str:
    return "–" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _metrics_table(metrics: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| forecast | log-loss | Brier | accuracy | macro-F1 | ECE |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in sorted(metrics.items(), key=lambda kv: kv[1].get("log_loss", 9e9)):
        label = f"**{name}**" if name == MODEL else name
        lines.append(
            f"| {label} | {_f(m.get('log_loss'))} | {_f(m.get('brier'))} | {_f(m.get('accuracy'))} "
            f"| {_f(m.get('macro_f1'))} | {_f(m.get('ece'))} |"
        )
    return lines


def margin_text(verdict: dict[str, Any]) -> str:
    """One sentence: the model's log-loss margin over each reference, with its interval."""
    parts = [
        f"{name} {m['diff']:+.4f} (95 % block-bootstrap interval {m['lo']:+.4f} to {m['hi']:+.4f})"
        for name, m in verdict.get("margins", {}).items()
    ]
    if not parts:
        return ""
    text = (
        " Model log-loss minus reference (negative = model better): "
        + "; ".join(parts)
        + ". An interval that contains 0 means the difference is within the noise."
    )
    if noise_only(verdict):
        text += (
            " The margin over the hindsight class prior is within the noise: "
            "**not a demonstrated edge** over it."
        )
    return text


def noise_only(verdict: dict[str, Any]) -> bool:
    """True when the model beats the hindsight prior but its bootstrap interval contains 0."""
    margin = verdict.get("margins", {}).get(ORACLE)
    return bool(verdict["beats"].get(ORACLE)) and margin is not None and margin["hi"] >= 0.0


def _verdict_text(verdict: dict[str, Any], where: str) -> str:
    return _verdict_sentence(verdict, where) + margin_text(verdict)


def _verdict_sentence(verdict: dict[str, Any], where: str) -> str:
    beats = verdict["beats"]
    lost = [n for n, ok in beats.items() if not ok]
    if not lost:
        return f"On {where}, the model's log-loss ({verdict['model_log_loss']:.4f}) is **lower than every baseline's**, including the hindsight class prior of the evaluated rows."
    return (
        f"On {where}, the model's log-loss ({verdict['model_log_loss']:.4f}) **does not beat** "
        f"{', '.join(lost)}. "
        + (
            "It does not beat the hindsight class prior of the evaluated rows: **no demonstrated edge** there."
            if not beats.get(ORACLE, True)
            else "It does beat the hindsight class prior of the evaluated rows."
        )
    )


def _group_table(groups: dict[str, dict[str, Any]], title: str) -> list[str]:
    lines = [
        f"| {title} | rows | model log-loss | prior | hindsight prior | model accuracy | up/neutral/down |",
        "|---|---|---|---|---|---|---|",
    ]
    for g, row in groups.items():
        shares = "/".join(f"{row['class_shares'][c]:.2f}" for c in CLASSES)
        lines.append(
            f"| {g} | {row['n']} | {_f(row[MODEL]['log_loss'])} | {_f(row['prior']['log_loss'])} "
            f"| {_f(row[ORACLE]['log_loss'])} | {_f(row[MODEL]['accuracy'])} | {shares} |"
        )
    return lines


def _forecast_md(report: dict[str, Any]) -> list[str]:
    cfg, data, sel = report["config"], report["data"], report["selection"]
    wf = report["walk_forward"]
    lines = [
        "## Direction forecast",
        "",
        f"Label: up / down if the mid moves more than {cfg['threshold_bps']} bp in "
        f"{cfg['horizon_s']:g} s, else neutral. Walk-forward: {cfg['n_folds']} expanding-window folds "
        f"ordered in time, gap {cfg['gap_s']:g} s between training and test.",
        "",
        f"Data: {data['rows']} labelled rows, {_ts(data['start_ns'])} → {_ts(data['end_ns'])} UTC; "
        + ", ".join(f"{s}: {n}" for s, n in data["symbols"].items())
        + "; class shares "
        + ", ".join(f"{c} {v:.2f}" for c, v in data["class_shares"].items())
        + ".",
        "",
        "### Verdict",
        "",
        _verdict_text(wf["verdict"], "walk-forward out-of-sample folds"),
    ]
    if "holdout" in report:
        lines += [
            "",
            _verdict_text(
                report["holdout"]["verdict"],
                "the hold-out data (never used for training or selection)",
            ),
        ]
    lines += [
        "",
        "### Model selection (pooled out-of-sample log-loss)",
        "",
        "| candidate | log-loss |",
        "|---|---|",
    ]
    for name, ll in sorted(sel["oos_log_loss"].items(), key=lambda kv: kv[1]):
        mark = " (selected)" if name == sel["selected"] else ""
        lines.append(f"| {name}{mark} | {ll:.4f} |")
    for name, why in sel["failed"].items():
        lines.append(f"| {name} | failed: {why} |")
    inf = report["inference"]
    lines += [
        "",
        f"Selected: `{sel['selected']}` on inputs {', '.join(report['final_model']['used_features'])}. "
        f"Inference: median {inf['median_us']:.1f} µs, p99 {inf['p99_us']:.1f} µs per "
        f"`predict_proba_one` call ({int(inf['calls'])} calls, measured on this machine).",
        "",
        "### Walk-forward metrics (pooled over the test folds)",
        "",
        *_metrics_table(wf["metrics"]),
        "",
        BASELINE_TEXT,
        "",
        "### Per fold (log-loss)",
        "",
        "| fold | train rows | test rows | test from | model | prior | hindsight prior |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in report["folds"]:
        ll = f["log_loss"]
        lines.append(
            f"| {f['fold']} | {f['train_rows']} | {f['test_rows']} | {_ts(f['test_start_ns'])} "
            f"| {_f(ll[MODEL])} | {_f(ll['prior'])} | {_f(ll[ORACLE])} |"
        )
    lines += [
        "",
        "### Per regime (walk-forward rows)",
        "",
        *_group_table(report["per_regime"], "regime"),
    ]
    lines += [
        "",
        "### Per symbol (walk-forward rows)",
        "",
        *_group_table(report["per_symbol"], "symbol"),
    ]
    lines += [
        "",
        "![reliability](reliability.png)",
        "![confusion](confusion.png)",
        "![log-loss by fold](logloss_by_fold.png)",
    ]
    if "holdout" in report:
        hold = report["holdout"]
        lines += [
            "",
            "### Hold-out",
            "",
            f"{hold['data']['rows']} rows: "
            + ", ".join(f"{s}: {n}" for s, n in hold["data"]["symbols"].items()),
            "",
            *_metrics_table(hold["metrics"]),
            "",
            *_group_table(hold["per_regime"], "regime"),
        ]
    return lines


def _regime_md(regime: dict[str, Any]) -> list[str]:
    lines = ["## Regime detector", ""]
    if regime.get("sim") is not None:
        sim = regime["sim"]
        lines += [
            f"Simulated lake: balanced accuracy vs `sim_truth` = {_f(sim['balanced_accuracy'])} "
            f"over {sim['points']} points.",
            "",
        ]
    if regime.get("sim_run") is not None:
        run = regime["sim_run"]
        recall = ", ".join(f"{k} {v:.2f}" for k, v in run["recall"].items())
        lines += [
            f"Simulator run (seed {run['seed']}, {run['seconds']:g} s): balanced accuracy "
            f"{_f(run['balanced_accuracy'])}, accuracy {_f(run['accuracy'])} over {run['points']} "
            f"points; recall {recall}; {run['regime_changes']} regime changes.",
            "",
        ]
    lines += [
        f"Real data has no true regime: durations and forward returns ({regime['horizon_s']:g} s) per detected regime, {regime['rows']} rows.",
        "",
        "| regime | share | episodes | mean duration s | median s | n | mean fwd bp | sd bp | t (overlap-adj.) | share fwd>0 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, share in regime.get("share", {}).items():
        d = regime["durations"].get(name, {})
        fr = regime["forward_return"].get(name, {})
        lines.append(
            f"| {name} | {share:.3f} | {d.get('episodes', 0)} | {_f(d.get('mean_s'), 1)} | {_f(d.get('median_s'), 1)} "
            f"| {fr.get('n', 0)} | {_f(fr.get('mean_fwd_bps'), 3)} | {_f(fr.get('std_fwd_bps'), 3)} "
            f"| {_f(fr.get('t_stat'), 2)} | {_f(fr.get('share_positive'), 3)} |"
        )
    return lines


def _plots(evaluation: ForecastEvaluation, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], "k:", label="perfect")
    for name, (y, p) in evaluation.oos.items():
        bins = reliability(y, p)
        ax.plot(
            [b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", label=name, ms=3
        )
    ax.set(
        xlabel="top-label confidence",
        ylabel="observed accuracy",
        title="Reliability (walk-forward)",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=90)
    plt.close(fig)

    y, p = evaluation.oos[MODEL]
    cm = confusion(y, p)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center")
    ax.set(
        xticks=range(3),
        yticks=range(3),
        xticklabels=CLASSES,
        yticklabels=CLASSES,
        xlabel="predicted",
        ylabel="true",
        title="Confusion (walk-forward)",
    )
    fig.tight_layout()
    fig.savefig(out / "confusion.png", dpi=90)
    plt.close(fig)

    folds = evaluation.report["folds"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    idx = np.arange(len(folds))
    for k, name in enumerate((MODEL, "prior", ORACLE)):
        ax.bar(idx + (k - 1) * 0.27, [f["log_loss"][name] for f in folds], 0.27, label=name)
    ax.set(xticks=idx, xlabel="fold", ylabel="log-loss", title="Out-of-sample log-loss by fold")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "logloss_by_fold.png", dpi=90)
    plt.close(fig)


def write_report(
    evaluation: ForecastEvaluation, regime: dict[str, Any] | None, out_dir: str | Path
) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and the plots; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    full = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "forecast": evaluation.report,
    }
    if regime is not None:
        full["regimes"] = regime
    paths = {"json": out / "report.json", "markdown": out / "report.md"}
    paths["json"].write_text(json.dumps(full, indent=2, default=float))
    lines = ["# MicroStream evaluation report", "", f"Generated {full['generated_at']}.", ""]
    lines += _forecast_md(evaluation.report)
    if regime is not None:
        lines += ["", *_regime_md(regime)]
    paths["markdown"].write_text("\n".join(lines) + "\n")
    _plots(evaluation, out)
    for name in PLOTS:
        paths[name] = out / name
    return paths
