"""``EDGE_OBSERVE=1 edgectl up`` (``make observe``): a real Prometheus beside the local stack.

Prometheus is Debian's package (``apt-get install prometheus``); it runs as one more
supervised process, scraping every instance of the topology the stack runs (so a shifted
test stack is scraped on its own ports) with the alert rules of deploy/observability.
Its data lives under ``<var>/prometheus``. Settings:

- ``EDGE_OBSERVE_PORT``: its listener on 127.0.0.1 (default 9090);
- ``EDGE_OBSERVE_SCRAPE_INTERVAL``: scrape and rule interval (default 15s).

Grafana is not packaged by Debian, so it is not started here: doc/observability.md says
how to point one at this Prometheus with the provisioning in deploy/observability/grafana.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from edgectl.observability import scrape_config
from edgectl.processes import ProcessSpec
from edgelib.topology import Topology

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "observability" / "prometheus" / "rules"


class ObserveError(RuntimeError):
    """Prometheus cannot be started (not installed)."""


def observing() -> bool:
    return os.environ.get("EDGE_OBSERVE", "").strip().lower() in ("1", "true", "yes")


def prometheus_spec(topology: Topology, var_dir: Path) -> ProcessSpec:
    """Write ``<var>/observability/prometheus.yml`` for ``topology``; the process to run."""
    exe = shutil.which("prometheus")
    if exe is None:
        raise ObserveError(
            "EDGE_OBSERVE needs Prometheus: apt-get install prometheus (Debian's package)"
        )
    port = int(os.environ.get("EDGE_OBSERVE_PORT", "9090"))
    interval = os.environ.get("EDGE_OBSERVE_SCRAPE_INTERVAL", "15s")
    config_dir = (var_dir / "observability").resolve()
    config_dir.mkdir(parents=True, exist_ok=True)
    config = config_dir / "prometheus.yml"
    config.write_text(
        "# Written by edgectl up (EDGE_OBSERVE=1) for this stack's topology.\n"
        + scrape_config(topology, rule_files=[str(RULES / "*.yml")], interval=interval)
    )
    data = (var_dir / "prometheus").resolve()
    data.mkdir(parents=True, exist_ok=True)
    return ProcessSpec(
        name="prometheus",
        service="prometheus",
        region=None,
        port=port,
        ready_url=f"http://127.0.0.1:{port}/-/ready",
        argv=[
            exe,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=15d",
            "--log.level=warn",
        ],
    )
