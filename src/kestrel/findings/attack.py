"""ATT&CK and ATLAS technique ids: their names, and a check that every id we emit exists.

The names come from ``shared/datasets/mitre`` (ATT&CK Enterprise v18.1 techniques CSV and
ATLAS 5.6.0) when it is present, so the check is against MITRE's own tables; otherwise from
`KNOWN`, the small committed table of the ids Kestrel's detectors use (taken from those same
files). Older write-ups of this pipeline used ids that do not exist (``AML.T1526``) or mean
something else (AML.T0048 is External Harms, AML.T0020 Poison Training Data): the test over
every emitted id exists to stop that from coming back.
"""

from __future__ import annotations

import csv
import gzip
import os
from functools import cache
from pathlib import Path

import yaml

MITRE_ENV = "KESTREL_MITRE"

# id → name, for the ids the built-in detectors emit (ATT&CK v18.1, ATLAS 5.6.0).
KNOWN: dict[str, str] = {
    "T1021.007": "Cloud Services",
    "T1021.008": "Direct Cloud VM Connections",
    "T1059.009": "Cloud API",
    "T1078.004": "Cloud Accounts",
    "T1087.004": "Cloud Account",
    "T1098.001": "Additional Cloud Credentials",
    "T1098.003": "Additional Cloud Roles",
    "T1098.004": "SSH Authorized Keys",
    "T1136.003": "Cloud Account",
    "T1040": "Network Sniffing",
    "T1110": "Brute Force",
    "T1190": "Exploit Public-Facing Application",
    "T1485": "Data Destruction",
    "T1490": "Inhibit System Recovery",
    "T1496.001": "Compute Hijacking",
    "T1496.004": "Cloud Service Hijacking",
    "T1526": "Cloud Service Discovery",
    "T1525": "Implant Internal Image",
    "T1530": "Data from Cloud Storage",
    "T1535": "Unused/Unsupported Cloud Regions",
    "T1537": "Transfer Data to Cloud Account",
    "T1550.001": "Application Access Token",
    "T1552": "Unsecured Credentials",
    "T1552.005": "Cloud Instance Metadata API",
    "T1555.006": "Cloud Secrets Management Stores",
    "T1556": "Modify Authentication Process",
    "T1562.001": "Disable or Modify Tools",
    "T1562.007": "Disable or Modify Cloud Firewall",
    "T1562.008": "Disable or Modify Cloud Logs",
    "T1578.002": "Create Cloud Instance",
    "T1580": "Cloud Infrastructure Discovery",
    "T1651": "Cloud Administration Command",
    "T1666": "Modify Cloud Resource Hierarchy",
    "AML.T0029": "Denial of AI Service",
    "AML.T0034": "Cost Harvesting",
    "AML.T0040": "AI Model Inference API Access",
    "AML.T0075": "Cloud Service Discovery",
}


def mitre_dir() -> Path | None:
    """``$KESTREL_MITRE``, else ``shared/datasets/mitre`` beside a parent of the working
    directory or of this package; None when there is none."""
    if MITRE_ENV in os.environ:
        return Path(os.environ[MITRE_ENV])
    for start in (Path.cwd(), Path(__file__).resolve()):
        for parent in (start, *start.parents):
            candidate = parent / "shared" / "datasets" / "mitre"
            if candidate.is_dir():
                return candidate
    return None


@cache
def technique_names() -> dict[str, str]:
    """Every known technique id → name: MITRE's tables when found, else `KNOWN`."""
    folder = mitre_dir()
    if folder is None:
        return dict(KNOWN)
    names = _attack(folder) | _atlas(folder)
    return names or dict(KNOWN)


def _attack(folder: Path) -> dict[str, str]:
    path = folder / "enterprise_attack_v18.1_techniques.csv"
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8", newline="") as f:
        rows = csv.DictReader(f)
        return {r["technique_id"]: r["name"] for r in rows if r["revoked"] != "True"}


def _atlas(folder: Path) -> dict[str, str]:
    path = folder / "ATLAS.yaml.gz"
    if not path.is_file():
        return {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        data = yaml.safe_load(f)
    return {t["id"]: t["name"] for m in data["matrices"] for t in m["techniques"]}


def name_of(technique: str) -> str:
    """The technique's name, or ``""`` for an unknown id."""
    return technique_names().get(technique, "")


def unknown(techniques: tuple[str, ...] | list[str]) -> list[str]:
    """The ids in ``techniques`` that MITRE's tables (or `KNOWN`) do not have."""
    names = technique_names()
    return [t for t in techniques if t not in names]
