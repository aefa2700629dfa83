"""What the agent writes is what the agent reader reads; the spool keeps order, survives
a restart, and stays within its bound."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kestrel.agent import EnvelopeFactory, Spool
from kestrel.agent.collectors import ProcessCollector, SystemCollector
from kestrel.agent.files import FileCollector
from kestrel.ingest.agent import normalize
from kestrel.ingest.base import Source
from kestrel.ingest.framing import frame_json


def _read(envelopes: list[bytes]):
    import io

    data = b"".join(e + b"\n" for e in envelopes)
    source = Source("agent.jsonl", lambda: io.BytesIO(data), len(data))
    [run] = list(frame_json(source, 10_000))
    return normalize(run)


def test_collected_envelopes_are_read_by_the_agent_reader(tmp_path: Path):
    factory = EnvelopeFactory("agent-1", "web-01")
    procs = ProcessCollector()
    procs.poll()  # the baseline: processes already running are not reported
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    found = procs.poll()
    child.wait()
    found += procs.poll() + SystemCollector().poll()
    files = FileCollector([tmp_path])
    files.start()
    (tmp_path / "dropped.txt").write_text("hello")
    import time

    time.sleep(0.3)
    found += files.poll()
    files.stop()
    chunk = _read([factory.make(o.event_type, o.payload, o.at) for o in found])
    assert chunk.rejected == []
    rows = chunk.batch.to_pylist()
    start = [r for r in rows if r["class"] == "process" and r["process_pid"] == child.pid]
    assert [r["activity"] for r in start] == ["create", "terminate"]
    assert start[0]["process_sha256"] and start[0]["host"] == "web-01"
    assert start[0]["process_path"] == str(Path(sys.executable).resolve())
    made = [r for r in rows if r["class"] == "file" and r["file_name"] == "dropped.txt"]
    assert made and made[0]["activity"] == "create"
    assert any(r["class"] == "system" for r in rows)


def test_envelopes_have_the_documented_key_order_and_unique_ids():
    factory = EnvelopeFactory("a", "h", clock=lambda: 1714570867.0)
    one = factory.make("process", {"action": "start", "pid": 1})
    two = factory.make("process", {"action": "start", "pid": 1})
    doc = json.loads(one)
    assert list(doc) == ["event_id", "agent_id", "event_type", "timestamp", "payload"]
    assert doc["timestamp"] == 1714570867000 and json.loads(two)["event_id"] != doc["event_id"]


def test_spool_keeps_order_across_a_restart(tmp_path: Path):
    spool = Spool(tmp_path / "s")
    for i in range(3):
        spool.put([f'{{"n": {i}}}'.encode()])
    again = Spool(tmp_path / "s")  # the agent restarted
    again.put([b'{"n": 3}'])
    seen = []
    while (seg := again.oldest()) is not None:
        seen.append(json.loads(seg.body)["n"])
        again.ack(seg.seq)
    assert seen == [0, 1, 2, 3] and again.pending() == (0, 0)


def test_spool_bound_drops_the_oldest_and_counts_them(tmp_path: Path):
    spool = Spool(tmp_path / "s", max_bytes=100)
    for i in range(10):
        spool.put([b'{"n": %d, "pad": "xxxxxxxxxxxxxxxx"}' % i])
    segments, size = spool.pending()
    assert size <= 100 and spool.dropped == 10 - segments
    first = spool.oldest()
    assert first is not None and json.loads(first.body)["n"] == 10 - segments
