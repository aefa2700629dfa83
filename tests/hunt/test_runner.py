"""`kestrel hunt`'s runner: what it sets on the store connection it opens."""

import json
import subprocess
import sys
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


# The `kestrel` command in a fresh process, with kestrel.store made to need NumPy at import
# (a finder that imports it when the DuckDB store module is looked up), as a store module
# importing NumPy at its top does.
_NEEDS_NUMPY = """
import sys
class NeedsNumpy:
    def find_spec(self, name, path, target=None):
        if name == "kestrel.store.duckdb":
            import numpy
        return None
if sys.argv[1] == "numpy":
    sys.meta_path.insert(0, NeedsNumpy())
sys.argv = ["kestrel", *sys.argv[2:]]
from kestrel.cli import console_main
console_main()
"""


@pytest.mark.parametrize("store_needs", ["numpy", "nothing"])
def test_sql_only_hunt_runs_whether_the_store_needs_numpy(tmp_path: Path, store_needs: str) -> None:
    """A hunt of SQL statements runs with NumPy marked absent; a store whose modules import
    NumPy gets it back before the hunt starts instead of failing the hunt."""
    hunt = "n = NEW process ['a.exe', 'b.exe']\nDISP n ATTR name"
    args = ["hunt", "--db", str(tmp_path / "k.duckdb"), "-f", "json", "-e", hunt]
    out = subprocess.run([sys.executable, "-c", _NEEDS_NUMPY, store_needs, *args],
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["rows"] == [{"name": "a.exe"}, {"name": "b.exe"}]
