"""`kestrel hunt`'s runner: what it sets on the store connection it opens."""

from pathlib import Path

import pytest

import kestrel.store as stores
from kestrel.hunt import runner
from kestrel.store import Store


def _progress_bar(store: Store) -> bool:
    on = store.query("SELECT current_setting('enable_progress_bar') AS on").column("on")
    return bool(on[0].as_py())


def test_hunt_runs_without_duckdb_progress_bar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """DuckDB's Python client prints a progress bar on stdout for a query past 2 s: into the
    JSON a hunt writes there (on by default outside pytest): the hunt's connection has it off."""
    db = str(tmp_path / "k.duckdb")
    seen: list[bool] = []
    real_open = stores.open_store

    def opening(path: str) -> Store:
        store = real_open(path)
        store.execute("SET enable_progress_bar = true")  # the client's default in a terminal
        assert _progress_bar(store)
        real_close = store.close

        def close() -> None:
            seen.append(_progress_bar(store))
            real_close()

        monkeypatch.setattr(store, "close", close)
        return store

    monkeypatch.setattr(stores, "open_store", opening)
    runner.run(None, "n = NEW process ['a.exe']\nDISP n ATTR name", db, "json", False)
    assert seen == [False]
    assert '"a.exe"' in capsys.readouterr().out
