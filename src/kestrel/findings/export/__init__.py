"""Exporters: a `Finding` as plain JSON, an OCSF Detection Finding (class 2004), and an
ATT&CK Navigator layer of the techniques seen."""

from kestrel.findings.export.formats import navigator_layer, to_json, to_ocsf

__all__ = ["navigator_layer", "to_json", "to_ocsf"]
