"""The gateway benchmark's chart and its section of doc/performance.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

START = "<!-- gateway-bench:start (written by make bench-gateway) -->"
END = "<!-- gateway-bench:end -->"

LABELS = {
    "upstream": "upstream (nginx, direct)",
    "nginx-proxy": "nginx reverse proxy",
    "gateway-public": "gateway, public route",
    "gateway-pipeline": "gateway, full pipeline",
    "gateway-pipeline-redis": "gateway, full pipeline, Redis",
}


def write_chart(results: dict[str, Any], path: Path) -> Path:
    """Grouped bars: req/s and p99 per scenario at each concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = results["results"]
    levels = [str(c) for c in results["setup"]["concurrency"]]
    names = list(table)
    fig, (ax_rps, ax_p99) = plt.subplots(1, 2, figsize=(13, 5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        xs = [j + i * width for j in range(len(levels))]
        rps = [table[name][c]["rps"] for c in levels]
        p99 = [table[name][c]["p99_ms"] for c in levels]
        ax_rps.bar(xs, rps, width, label=LABELS.get(name, name))
        ax_p99.bar(xs, p99, width, label=LABELS.get(name, name))
        for x, value in zip(xs, rps, strict=True):
            ax_rps.text(x, value, f"{value / 1000:.1f}k", ha="center", va="bottom", fontsize=7)
    for ax, title, unit in (
        (ax_rps, "throughput", "requests/s"),
        (ax_p99, "p99 latency", "ms"),
    ):
        ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(levels))])
        ax.set_xticklabels([f"c={c}" for c in levels])
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.grid(axis="y", alpha=0.3)
    ax_p99.set_yscale("log")
    ax_rps.legend(fontsize=8)
    setup = results["setup"]
    fig.suptitle(
        f"Edge gateway vs nginx, {results['machine']['cpus']} CPUs, {setup['pinning']}, "
        f"1 gateway worker ({results['when']})",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def table_markdown(results: dict[str, Any]) -> str:
    rows = [
        "| scenario | c | req/s | p50 ms | p99 ms | errors | RSS MB | CPU µs/req |"
        " vs nginx proxy | vs upstream |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, by_c in results["results"].items():
        for c, row in by_c.items():
            rss = f"{row['rss_mb']:.0f}" if row.get("rss_mb") else "-"
            cpu = row.get("cpu_us_per_request")
            rows.append(
                f"| {LABELS.get(name, name)} | {c} | {row['rps']:,.0f} | {row['p50_ms']:.2f} |"
                f" {row['p99_ms']:.2f} | {row['errors']} | {rss} | {cpu if cpu else '-'} |"
                f" {row['ratio_to_nginx_proxy']:.2f} | {row['ratio_to_upstream']:.2f} |"
            )
    return "\n".join(rows)


def checks_markdown(results: dict[str, Any]) -> str:
    names = {
        "pass_through_c64_vs_nginx_proxy": "pass-through at c=64, share of nginx's req/s",
        "pipeline_vs_pass_through_c64": "full pipeline at c=64, share of pass-through",
        "pipeline_c16_p99_ms": "full pipeline at c=16, p99 (ms)",
        "gateway_rss_mb_per_worker": "gateway RSS per worker, peak (MB)",
    }
    lines = [
        "| target | measured (medians) | goal | met | per round | by CPU per request |",
        "|---|---:|---|---|---|---:|",
    ]
    for key, check in results["checks"].items():
        rounds = check.get("per_round")
        per_round = ", ".join(str(r) for r in rounds) if rounds else "-"
        if key == "pipeline_c16_p99_ms":
            nginx = check.get("nginx_proxy_per_round") or [check["nginx_proxy_c16_p99_ms"]]
            per_round += f" (nginx proxy: {', '.join(str(r) for r in nginx)}"
            if check.get("steal_pct_per_round"):
                steal = ", ".join(f"{r}%" for r in check["steal_pct_per_round"])
                per_round += f"; host CPU steal: {steal}"
            per_round += ")"
        lines.append(
            f"| {names.get(key, key)} | {check['value']} | {check['target']} |"
            f" {'yes' if check['ok'] else '**no**'} | {per_round} |"
            f" {check.get('by_cpu_per_request') or '-'} |"
        )
    return "\n".join(lines)


def section(results: dict[str, Any]) -> str:
    setup = results["setup"]
    notes = "".join(f"- {LABELS.get(k, k)}: {v}\n" for k, v in results["notes"].items())
    return f"""{START}
### Latest run

{results["when"]}, commit `{setup["git"]}`, {results["machine"]["cpus"]} CPUs
({results["machine"]["cpu"]}), load average at the end {results["machine"]["loadavg_at_end"]}.
{setup["pinning"]}; {setup["seconds"]} s per measurement after a 1 s warm-up, median of
{setup["rounds"]} interleaved rounds; {setup["body_bytes"]}-byte JSON body; one gateway
worker; {setup["tokens"]} users' tokens in rotation on the pipeline routes.

{checks_markdown(results)}

{table_markdown(results)}

{notes}
![gateway benchmark](../bench/results/gateway.png)

Raw figures, every round included: `bench/results/gateway.json`.
{END}"""


def write_doc_section(results: dict[str, Any], doc: Path) -> None:
    """Replace the generated part of the gateway section, keeping everything else."""
    text = doc.read_text() if doc.exists() else ""
    new = section(results)
    if START in text and END in text:
        before, rest = text.split(START, 1)
        _, after = rest.split(END, 1)
        text = before + new + after
    else:
        text = text.rstrip() + "\n\n" + new + "\n"
    doc.write_text(text)
