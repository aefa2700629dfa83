"""A Jupyter kernel for hunts (the optional ``[jupyter]`` extra: ipykernel).

Each notebook is one hunt session over one store: a cell is hunt text (one or several
statements), run by `Session.execute`; variables live on from cell to cell. What a cell
displays comes back as rich output: DISP / INFO tables as HTML tables (the first
`MAX_ROWS` rows, with the total), EXPLAIN's SQL as text, an analytics' HTML or text as
given. Errors come back as a Jupyter error whose message has the line and column (no
Python traceback). Tab completes keywords, types, variables and attributes as in
`kestrel shell`.

    python -m kestrel.hunt.kernel install [--user | --prefix DIR] [--db STORE]
    python -m kestrel.hunt.kernel -f CONNECTION_FILE     (what Jupyter runs)

The store is ``$KESTREL_DB`` (``--db`` at install writes it into the kernel spec), else
the default store (``~/.kestrel/kestrel.duckdb``).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ipykernel.kernelbase import Kernel

from kestrel import __version__
from kestrel.errors import KestrelError
from kestrel.hunt.display import Display, TableDisplay

NAME = "kestrel"
_WORD = re.compile(r"[\w.:-]*$")  # the word completion replaces (as kestrel.hunt.shell)
MAX_ROWS = 1000  # rows of a table sent to the notebook (the total is said)


def table_html(d: TableDisplay, max_rows: int = MAX_ROWS) -> tuple[str, str]:
    """A table display as (HTML, plain text): the first ``max_rows`` rows."""
    page, total = d.head(max_rows)
    columns = page.column_names
    rows = page.to_pylist()
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r[c])}</td>" for c in columns) + "</tr>" for r in rows
    )
    more = f"{total - len(rows):,} more rows (use LIMIT / OFFSET)" if total > len(rows) else ""
    caption = html.escape(f"{d.title}: {total:,} rows" + (f"; {more}" if more else ""))
    markup = (f'<table class="kestrel-hunt"><caption>{caption}</caption>'
              f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")  # fmt: skip
    lines = ["\t".join(columns), *("\t".join(_text(r[c]) for c in columns) for r in rows)]
    if more:
        lines.append(f"… {more}")
    return markup, "\n".join(lines)


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _cell(value: object) -> str:
    return html.escape(_text(value))


def bundle(d: Display) -> dict[str, Any]:
    """A display as a Jupyter ``display_data`` content (MIME bundle)."""
    if isinstance(d, TableDisplay):
        markup, text = table_html(d)
        return {"data": {"text/html": markup, "text/plain": text}, "metadata": {}}
    data: dict[str, Any] = {"text/plain": d.text}
    if d.mime != "text/plain":
        data[d.mime] = d.text
    return {"data": data, "metadata": dict(d.meta)}


class HuntKernel(Kernel):
    """Runs each cell in one hunt session over the store."""

    implementation = "kestrel-hunt"
    implementation_version = __version__
    banner = "Kestrel hunt: GET, FIND, DISP … over the Kestrel store (docs/hunting.md)"
    language_info = {  # noqa: RUF012 (the base class declares it so)
        "name": "kestrel",
        "mimetype": "text/x-kestrel",
        "file_extension": ".hf",
        "pygments_lexer": "text",
        "version": "1",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        from kestrel.config import default_db
        from kestrel.hunt.session import Session
        from kestrel.store import open_store

        self._store = open_store(os.environ.get("KESTREL_DB") or default_db())
        self._hunt = Session(self._store)

    async def do_execute(
        self,
        code: str,
        silent: bool,
        store_history: bool = True,
        user_expressions: dict[str, Any] | None = None,
        allow_stdin: bool = False,
        *,
        cell_meta: dict[str, Any] | None = None,
        cell_id: str | None = None,
    ) -> dict[str, Any]:
        """Run the cell's hunt text; send what it displays."""
        try:
            displays = self._hunt.execute(code) if code.strip() else []
        except Exception as exc:  # a hunt error is one line; anything else is a bug: traceback
            message = str(exc)
            lines = [message] if isinstance(exc, KestrelError) else traceback.format_exception(exc)
            if not silent:
                stream = {"name": "stderr", "text": "".join(f"{x.rstrip()}\n" for x in lines)}
                self.send_response(self.iopub_socket, "stream", stream)  # type: ignore[no-untyped-call]
            return {"status": "error", "execution_count": self.execution_count,
                    "ename": type(exc).__name__, "evalue": message,
                    "traceback": lines}  # fmt: skip
        if not silent:
            for d in displays:
                shown = bundle(d)
                self.send_response(self.iopub_socket, "display_data", shown)  # type: ignore[no-untyped-call]
        return {"status": "ok", "execution_count": self.execution_count, "payload": [],
                "user_expressions": {}}  # fmt: skip

    async def do_complete(self, code: str, cursor_pos: int) -> dict[str, Any]:
        """Completions of the word before the cursor (as `kestrel shell`'s Tab)."""
        from kestrel.hunt.shell import candidates

        line = code[:cursor_pos].rsplit("\n", 1)[-1]
        matches = candidates(self._hunt, line)
        start = cursor_pos - _word_length(line)
        return {"status": "ok", "matches": matches, "cursor_start": start,
                "cursor_end": cursor_pos, "metadata": {}}  # fmt: skip

    async def do_is_complete(self, code: str) -> dict[str, Any]:
        """A cell is complete unless its last line ends with a continuation backslash."""
        pending = code.rstrip("\n").endswith("\\")
        return {"status": "incomplete" if pending else "complete", "indent": ""}

    async def do_shutdown(self, restart: bool) -> dict[str, Any]:
        """Close the session and the store."""
        self._hunt.close()
        self._store.close()
        return {"status": "ok", "restart": restart}


def _word_length(line: str) -> int:
    found = _WORD.search(line)
    return len(found.group(0)) if found else 0


def spec(db: str | None = None) -> dict[str, Any]:
    """The kernel spec (``kernel.json``): this interpreter runs this module."""
    out: dict[str, Any] = {
        "argv": [sys.executable, "-m", "kestrel.hunt.kernel", "-f", "{connection_file}"],
        "display_name": "Kestrel hunt",
        "language": "kestrel",
        "metadata": {"debugger": False},
    }
    if db:
        out["env"] = {"KESTREL_DB": db}
    return out


def install(user: bool = False, prefix: str | None = None, db: str | None = None) -> str:
    """Install the kernel spec for Jupyter; the folder it went to."""
    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "kernel.json").write_text(json.dumps(spec(db), indent=1))
        return str(KernelSpecManager().install_kernel_spec(tmp, NAME, user=user, prefix=prefix))


def main(argv: Sequence[str] | None = None) -> None:
    """``install`` the kernel spec, or run the kernel (any other arguments go to ipykernel)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["install"]:
        parser = argparse.ArgumentParser(prog="python -m kestrel.hunt.kernel install")
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--user", action="store_true", help="for this user only")
        where.add_argument("--prefix", help="under this prefix (e.g. a virtual environment)")
        parser.add_argument("--db", help="the store the kernel hunts over")
        opts = parser.parse_args(args[1:])
        print(install(opts.user, opts.prefix, opts.db))  # noqa: T201 (the command's output)
        return
    from ipykernel.kernelapp import IPKernelApp

    IPKernelApp.launch_instance(argv=args, kernel_class=HuntKernel)


if __name__ == "__main__":
    main()
