"""The Jupyter kernel (`kestrel.hunt.kernel`, the ``[jupyter]`` extra), driven as Jupyter
drives it: the kernel spec installed, the kernel started by jupyter_client in its own
process, cells sent over ZeroMQ, display and error messages read back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.hunt.conftest import hunt_batch

from kestrel.hunt.display import TableDisplay, TextDisplay
from kestrel.store import DuckDBStore

pytest.importorskip("ipykernel", reason="the [jupyter] extra (ipykernel) is not installed")
pytest.importorskip("jupyter_client", reason="the [jupyter] extra is not installed")

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel

from kestrel.hunt import kernel


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BlockingKernelClient]:
    db = tmp_path / "k.duckdb"
    store = DuckDBStore(db)
    store.append(hunt_batch())
    store.close()
    where = kernel.install(prefix=str(tmp_path / "env"), db=str(db))
    assert json.loads((Path(where) / "kernel.json").read_text())["env"] == {"KESTREL_DB": str(db)}
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "env" / "share" / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    km: KernelManager
    km, kc = start_new_kernel(kernel_name=kernel.NAME, startup_timeout=120)
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(kc: BlockingKernelClient, code: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The execute reply's content and the display / stream messages' contents."""
    out: list[dict[str, Any]] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] in ("display_data", "stream"):
            out.append(msg["content"])

    reply = kc.execute_interactive(code, output_hook=hook, timeout=120)
    return reply["content"], out


def test_cells_share_one_session_and_tables_come_back_as_html(
    client: BlockingKernelClient,
) -> None:
    reply, shown = run(client, "p = GET process WHERE name = 'cmd.exe'")
    assert reply["status"] == "ok" and shown == []
    reply, shown = run(client, "c = FIND process CHILD OF p\nDISP c ATTR name, pid")
    assert reply["status"] == "ok" and len(shown) == 1
    html = shown[0]["data"]["text/html"]
    assert "<th>name</th>" in html and "<td>whoami.exe</td>" in html
    # h1's cmd.exe started whoami and powershell; h2's (named as net.exe's parent) net.exe
    assert "<td>powershell.exe</td>" in html and "<td>net.exe</td>" in html
    assert "c: 3 rows" in html
    assert shown[0]["data"]["text/plain"].splitlines()[0] == "name\tpid"
    reply, shown = run(client, "EXPLAIN c")
    assert reply["status"] == "ok" and "SELECT" in shown[0]["data"]["text/plain"]


def test_errors_say_where_without_a_traceback(client: BlockingKernelClient) -> None:
    run(client, "procs = GET process")
    reply, shown = run(client, "DISP prcs")
    assert reply["status"] == "error" and reply["ename"] == "HuntNameError"
    assert "line 1" in reply["evalue"] and "did you mean procs?" in reply["evalue"]
    assert reply["traceback"] == [reply["evalue"]]
    assert shown == [{"name": "stderr", "text": reply["evalue"] + "\n"}]
    reply, _ = run(client, "x = GTE process")
    assert reply["status"] == "error" and "did you mean GET?" in reply["evalue"]


def test_completion(client: BlockingKernelClient) -> None:
    run(client, "procs = GET process")
    msg_id = client.complete("DISP procs ATTR command_l", 25)
    answer = client.get_shell_msg(timeout=60)
    assert answer["parent_header"]["msg_id"] == msg_id
    reply = answer["content"]
    assert "command_line" in reply["matches"]
    assert reply["cursor_start"] == len("DISP procs ATTR ") and reply["cursor_end"] == 25


def test_bundles() -> None:
    import pyarrow as pa

    table = TableDisplay("v", pa.table({"name": ["<b>", None], "n": [1, 2]}))
    markup, text = kernel.table_html(table, max_rows=1)
    assert "<td>&lt;b&gt;</td>" in markup and "1 more rows" in markup
    assert text.splitlines() == ["name\tn", "<b>\t1", "… 1 more rows (use LIMIT / OFFSET)"]
    page = kernel.bundle(TextDisplay("a", "<p>hi</p>", "text/html"))
    assert page["data"] == {"text/plain": "<p>hi</p>", "text/html": "<p>hi</p>"}
