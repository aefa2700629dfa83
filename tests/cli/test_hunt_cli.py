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
