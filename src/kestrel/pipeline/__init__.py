"""Stage wiring: the embedded runner reads batches from the store, runs the registered
detectors, merges and stores their findings, and checkpoints the detectors' state.

It knows no detector by name: anything with ``detect(batch)`` runs; anything that also has
``state()`` / ``load_state()`` is checkpointed. Detectors never see the store.
"""

from kestrel.pipeline.embedded import RunReport, default_detectors, run_detection
from kestrel.pipeline.persist import load_findings, save_findings
from kestrel.pipeline.profiles import entity_profile, entity_profiles

__all__ = ["RunReport", "default_detectors", "entity_profile", "entity_profiles",
           "load_findings", "run_detection", "save_findings"]  # fmt: skip
