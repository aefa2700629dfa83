"""Run one huntflow in Kestrel 1.x or 2.x (inside that generation's own environment).

    python hunt_peer_run.py HUNTFLOW.hf OUT.json

Writes the last DISP's rows to OUT.json as JSON records (pandas), prints how many. Runs
under the peer's interpreter, so it uses only what both generations install.
"""

import sys
from pathlib import Path

from kestrel.session import Session  # type: ignore[import-not-found]  # the peer's kestrel


def main() -> None:
    huntflow = Path(sys.argv[1]).read_text()
    with Session() as session:
        outputs = list(session.execute(huntflow))
    frames = [getattr(o, "dataframe", o) for o in outputs]
    # 1.x ends with a summary table of the variables; the DISP is the frame before it
    frame = [f for f in frames if hasattr(f, "columns") and "VARIABLE" not in f.columns][-1]
    frame.to_json(sys.argv[2], orient="records", date_format="iso")
    print(len(frame))


if __name__ == "__main__":
    main()
