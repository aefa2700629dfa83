"""The Grafana provisioning: dashboards are valid JSON, point at the provisioned datasource,
and query only metrics that the API exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
_METRIC = re.compile(r"\bkestrel_[a-z_]+")


def test_provisioning_files_parse_and_name_the_datasource_uid():
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/kestrel.yml").read_text())
    assert sources["datasources"][0]["uid"] == "kestrel-prometheus"
    yaml.safe_load((GRAFANA / "provisioning/dashboards/kestrel.yml").read_text())
    assert len(DASHBOARDS) == 2


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_every_query_uses_an_exported_metric(path: Path, api):
    exported = set(_METRIC.findall(api.get("/metrics").text))
    dashboard = json.loads(path.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs and all(
        p["datasource"]["uid"] == "kestrel-prometheus" for p in dashboard["panels"]
    )
    for expr in exprs:
        for name in _METRIC.findall(expr):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name in exported or base in exported, (path.name, name)
