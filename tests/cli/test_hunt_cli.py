"""`kestrel hunt` as a user runs it: a huntbook file or -e text, table or JSON output."""

import json
import subprocess
import sys
from pathlib import Path


def kestrel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kestrel", *args], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def test_hunt_e_json(fixtures: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "k.duckdb")
    assert kestrel("ingest", "--db", db, str(fixtures / "cloudtrail")).returncode == 0
    out = kestrel("hunt", "--db", db, "-f", "json", "-e",
                  "c = GET cloud-api-call\nDISP c ATTR operation LIMIT 1")  # fmt: skip
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown[0]["columns"] == ["operation"] and len(shown[0]["rows"]) == 1


def test_huntbook_file_table_output(tmp_path: Path) -> None:
    book = tmp_path / "a.hf"
    book.write_text("# a huntbook\nn = NEW process ['cmd.exe', 'x.exe']\nDISP n ATTR name\n")
    out = kestrel("hunt", "--db", str(tmp_path / "k.duckdb"), str(book))
    assert out.returncode == 0, out.stderr
    assert "cmd.exe" in out.stdout and "x.exe" in out.stdout


def test_syntax_error_is_one_line_with_position(tmp_path: Path) -> None:
    out = kestrel("hunt", "--db", str(tmp_path / "k.duckdb"), "-e", "p = GTE process")
    assert out.returncode == 2
    assert "line 1, column" in out.stderr and "did you mean GET?" in out.stderr
    assert "Traceback" not in out.stderr


def test_plain_command_lines_run_without_typer(tmp_path: Path) -> None:
    # `kestrel hunt` with plain arguments skips Typer (and Pydantic): a fifth of start-up
    code = ("import sys; from kestrel.cli import main; sys.argv = ['kestrel', 'hunt', "
            "'--db', ':memory:', '-f', 'json', '-e', \"n = NEW process ['a']\\nDISP n\"]\n"
            "try:\n    main()\nfinally:\n"
            "    heavy = ('typer', 'pydantic', 'asyncio')\n"
            "    print(sorted(m for m in heavy if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    shown, loaded = out.stdout.strip().splitlines()
    assert json.loads(shown)[0]["rows"] == [{"name": "a"}]
    assert loaded == "[]"


def test_fast_path_and_typer_agree(tmp_path: Path) -> None:
    # a trailing `--` is valid for Typer and sends the command line to it
    book = tmp_path / "a.hf"
    book.write_text("n = NEW process ['cmd.exe', 'X.exe']\nm = n WHERE name = 'x.exe'\nDISP m\n")
    db = str(tmp_path / "k.duckdb")
    for args in (["--db", db, "-f", "json", "-i", str(book)],
                 [f"--db={db}", "--format=json", "--ignore-case", str(book)],
                 ["--db", db, "--format", "table", str(book)],
                 ["--db", db, "-e", "n = NEW process ['a']"]):  # fmt: skip
        fast, slow = kestrel("hunt", *args), kestrel("hunt", *args, "--")
        assert fast.returncode == slow.returncode == 0, (fast.stderr, slow.stderr)
        assert fast.stdout == slow.stdout and fast.stdout.strip()
    both = kestrel("hunt", "--db", db, "-e", "x", str(book))
    assert both.returncode == 2 and "one of them" in both.stderr


def test_fast_args_takes_only_plain_forms() -> None:
    from kestrel.hunt.runner import fast_args

    assert fast_args(["-e", "t", "--db=x", "-i"]) == {
        "huntbook": None, "execute": "t", "db": "x", "fmt": "table",
        "ignore_case": True}  # fmt: skip
    assert fast_args(["b.hf", "-f", "json"]) == {
        "huntbook": Path("b.hf"), "execute": None, "db": None, "fmt": "json",
        "ignore_case": False}  # fmt: skip
    for other in (["--help"], ["-e"], ["-e", "a", "-e", "b"], ["--", "b.hf"], ["-x"],
                  ["a.hf", "b.hf"], ["--ignore-case=1"]):  # fmt: skip
        assert fast_args(other) is None, other


def test_unknown_option_is_a_usage_error_not_a_traceback() -> None:
    out = kestrel("hunt", "--bogus")
    assert out.returncode == 2 and "No such option: --bogus" in out.stderr
    assert "Traceback" not in out.stderr


SQL_HUNT = """p = GET process
c = FIND process CREATED p
w = p WHERE pid > 0
s = SORT w BY pid DESC
g = GROUP p BY host WITH COUNT(pid) AS n
n = NEW process ['cmd.exe', 'x.exe']
j = JOIN p, p BY pid, pid
k = COPY s
DISP s ATTR pid, name, first_observed
DISP c
DISP g
DISP j LIMIT 2
INFO k
DESCRIBE p.pid
EXPLAIN w
DISP n"""


def test_sql_only_hunt_runs_without_numpy_and_shows_the_same(
    fixtures: Path, tmp_path: Path
) -> None:
    # PyArrow imports NumPy when it is there; a hunt that only runs SQL needs none of it
    db = str(tmp_path / "k.duckdb")
    ingest = kestrel("ingest", "--db", db, str(fixtures / "windows" / "winlogbeat.jsonl"))
    assert ingest.returncode == 0, ingest.stderr
    code = ("import sys\n{pre}from kestrel.cli import main\n"
            "sys.argv = ['kestrel', 'hunt', '--db', sys.argv[1], '-f', 'json', '-e', sys.argv[2]]\n"
            "main()\nprint('numpy' in sys.modules, file=sys.stderr)")  # fmt: skip
    runs = [subprocess.run([sys.executable, "-c", code.format(pre=pre), db, SQL_HUNT],
                           capture_output=True, text=True, timeout=120, check=False)
            for pre in ("", "import numpy\n")]  # fmt: skip
    without, with_numpy = runs
    assert without.returncode == with_numpy.returncode == 0, (without.stderr, with_numpy.stderr)
    assert without.stderr.split()[-1] == "False" and with_numpy.stderr.split()[-1] == "True"
    assert without.stdout == with_numpy.stdout
    shown = json.loads(without.stdout)
    assert len(shown) == 8 and shown[0]["rows"] and shown[1]["rows"]


def test_sql_only_takes_only_statements_that_run_as_sql() -> None:
    from kestrel.hunt.runner import sql_only

    assert sql_only("p = GET process FROM store WHERE name = 'a'\nq = GET process FROM p\nDISP q")
    assert sql_only("p = GET process\nq = FIND process CREATED p\nINFO q")
    for text in ("p = GET process FROM /tmp/x.json",
                 "p = GET process WHERE SIGMA 'abc'",
                 "p = GET process\nq = p WHERE SIGMA 'abc'",
                 "p = LOAD /tmp/x.csv AS process",
                 "p = GET process\nSAVE p TO /tmp/x.parquet",
                 "p = GET process\nAPPLY python://m.f ON p",
                 "p = GTE process"):  # fmt: skip
        assert not sql_only(text), text


def test_the_command_leaves_early_with_every_row_written(tmp_path: Path) -> None:
    """`python -m kestrel hunt` (`console_main`) ends with `os._exit` after the hunt: the
    output must still arrive whole through a pipe (block-buffered, larger than one buffer),
    the exit code be 0, and the store open again afterwards."""
    names = ", ".join(f"'p{i:05d}.exe'" for i in range(5000))
    book = tmp_path / "big.hf"
    book.write_text(f"n = NEW process [{names}]\nDISP n\n")
    db = str(tmp_path / "k.duckdb")
    out = kestrel("hunt", "--db", db, "-f", "json", str(book))
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)[0]["rows"]
    assert len(rows) == 5000 and rows[-1] == {"name": "p04999.exe"}
    again = kestrel("hunt", "--db", db, "-f", "json", "-e", "n = NEW process ['a']\nDISP n")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)[0]["rows"] == [{"name": "a"}]
