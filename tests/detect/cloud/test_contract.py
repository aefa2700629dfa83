"""Generic promises every registered detector keeps (river's check_estimator, over DETECTORS)."""

from __future__ import annotations

from typing import Any

import pytest

from kestrel.detect import DETECTORS
from kestrel.detect.cloud import CLOUD_DETECTORS
from kestrel.eval.datasets import generated
from kestrel.events import Batch, empty_batch

CLOUD = sorted(CLOUD_DETECTORS)
# the cloud detectors through the Detector protocol plus their state methods, untyped here
CLASSES: dict[str, Any] = dict(CLOUD_DETECTORS)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_registered_and_documented(name: str) -> None:
    cls = DETECTORS[name]
    assert cls.name == name
    assert (cls.__doc__ or "").strip()


@pytest.mark.parametrize("name", CLOUD)
def test_empty_batch_gives_nothing(name: str) -> None:
    assert CLASSES[name]().detect(empty_batch()) == []


@pytest.mark.parametrize("name", CLOUD)
def test_clone_and_repr(name: str) -> None:
    args = {"new_behaviour": {"min_history": 10}, "instance_credentials": {"min_history": 10}}
    det = CLASSES[name](**args.get(name, {"timezone": "UTC"}))
    clone = det.clone()
    assert repr(clone) == repr(det)
    assert clone is not det
    assert eval(repr(det), {type(det).__name__: type(det)}).params() == det.params()


@pytest.mark.parametrize("name", CLOUD)
def test_state_survives_a_checkpoint(name: str) -> None:
    det = CLASSES[name]()
    det.detect(_batch())
    fresh = det.clone()
    fresh.load_state(det.state())
    for key, table in det.state().items():
        assert fresh.state()[key].equals(table), key


def _batch() -> Batch:
    import io

    import pyarrow as pa

    from kestrel.ingest import READERS
    from kestrel.ingest.base import Source

    group = generated("all", hours=3, seed=1)
    tables = []
    for fmt in ("cloudtrail", "metrics"):
        data = b"\n".join(r.raw for r in group.records if r.fmt == fmt)
        src = Source(fmt, lambda d=data: io.BytesIO(d), len(data))  # type: ignore[misc]
        tables += [c.batch for c in READERS[fmt]().read(src)]
    return pa.concat_tables(tables)
