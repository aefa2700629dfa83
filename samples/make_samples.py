"""Write the bundled sample data that `make run` ingests (see README.md in this folder).

Every value is made up for Kestrel (the generators are in ``samplegen/``); nothing is copied
from a dataset. The output is deterministic (one seeded random generator, gzip with a fixed
mtime), so running this again rewrites byte-identical files:

    .venv/bin/python samples/make_samples.py [OUT_DIR]    # OUT_DIR defaults to samples/
"""

from __future__ import annotations

import gzip
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from samplegen.cloudtrail import cloudtrail_records
from samplegen.endpoint import agent_events
from samplegen.gpu import dcgm_text, gpu_rows, smi_text

HERE = Path(__file__).resolve().parent
SEED = 20240501


def main(out: Path = HERE) -> None:
    """Write every sample file under ``out``."""
    rng = random.Random(SEED)
    _write(out / "agent" / "endpoint.jsonl", _jsonl(agent_events(rng)))
    _write(out / "metrics" / "gpu_workloads.jsonl", _jsonl(gpu_rows(rng)))
    _write(out / "metrics" / "dcgm.prom", dcgm_text(rng).encode())
    _write(out / "metrics" / "nvidia-smi.csv", smi_text(rng).encode())
    trail = {"Records": cloudtrail_records(rng)}
    data = json.dumps(trail, separators=(",", ":")).encode()
    _write(out / "cloudtrail" / "trail.json.gz", gzip.compress(data, mtime=0))


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _jsonl(rows: Iterator[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows).encode()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
