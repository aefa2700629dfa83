"""Exporters: a `Finding` as plain JSON, an OCSF Detection Finding (class 2004), Sigma (a
correlation rule for a windowed finding), and an ATT&CK Navigator layer of the techniques
seen."""

from kestrel.findings.export.formats import navigator_layer, to_json, to_ocsf
from kestrel.findings.export.sigma import to_sigma

__all__ = ["navigator_layer", "to_json", "to_ocsf", "to_sigma"]
