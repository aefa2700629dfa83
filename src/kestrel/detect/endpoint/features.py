"""Numeric features of endpoint events, per class, computed over whole frames.

Rates are per host and *tumbling window* (``window_minutes``): the counter of a window
starts at zero and only counts events whose time falls in it. The ancestor's "per hour"
counter was never reset, so a host looked busier every hour it ran; here a window's count
cannot include anything from another window. A window that spans two batches is carried
in `WindowCounter.state` (the open window of each host only), so counts are exact across
batch boundaries, and windows that closed are dropped.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

ENDPOINT_CLASSES = ("process", "network", "file")
FEATURES: dict[str, tuple[str, ...]] = {
    "process": ("cmdline_len", "cmdline_args", "path_depth", "in_temp", "rate", "threat_score"),
    "network": ("dst_port", "public_dst", "bytes_out_log", "rate", "threat_score"),
    "file": ("path_depth", "in_temp", "exec_ext", "rate", "threat_score"),
}
_TEMP = r"(?i)([\\/](temp|tmp)[\\/]|\\appdata\\local\\temp\\|\\users\\public\\|/dev/shm/)"
_EXEC = r"(?i)\.(exe|dll|scr|ps1|vbs|js|hta|bat|cmd|sh|elf|so)$"
_PRIVATE = r"^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|127\.|169\.254\.|::1$|fe80:|fc|fd)"
COUNTER_SCHEMA: dict[str, pl.DataType] = {
    "host": pl.String(),
    "class": pl.String(),
    "window_start": pl.Datetime("us", "UTC"),
    "count": pl.Int64(),
}


def host_key() -> pl.Expr:
    """The per-agent key: the agent id when there is one, else the host name."""
    return pl.coalesce(pl.col("agent_id"), pl.col("host"), pl.col("entity_id")).alias("host")


def event_features() -> list[pl.Expr]:
    """Per-event features (no state): every class's columns, null where not meaningful."""
    path = pl.coalesce(pl.col("process_path"), pl.col("file_path")).fill_null("")
    cmd = pl.col("process_cmdline").fill_null("")
    return [
        cmd.str.len_chars().cast(pl.Float64).alias("cmdline_len"),
        cmd.str.count_matches(" ").cast(pl.Float64).alias("cmdline_args"),
        path.str.count_matches(r"[\\/]").cast(pl.Float64).alias("path_depth"),
        path.str.contains(_TEMP).cast(pl.Float64).alias("in_temp"),
        pl.col("file_path").fill_null("").str.contains(_EXEC).cast(pl.Float64).alias("exec_ext"),
        pl.col("dst_port").cast(pl.Float64).fill_null(0.0).alias("dst_port"),
        (~pl.col("dst_ip").fill_null("127.0.0.1").str.contains(_PRIVATE))
        .cast(pl.Float64)
        .alias("public_dst"),
        (pl.col("bytes_out").cast(pl.Float64).fill_null(0.0) + 1.0).log10().alias("bytes_out_log"),
        pl.col("threat_score").cast(pl.Float64).fill_null(0.0).alias("threat_score"),
    ]


class WindowCounter:
    """Events per (host, class, tumbling window), carried across batches for open windows."""

    def __init__(self, window_minutes: int = 60) -> None:
        self.window = timedelta(minutes=window_minutes)
        self.state = pl.DataFrame(schema=COUNTER_SCHEMA)

    def rate(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` (with ``host``, ``class``, ``time``) plus ``window_start`` and ``rate``:
        the count of its host's events of its class in its window, up to the batch end."""
        frame = frame.with_columns(pl.col("time").dt.truncate(self.window).alias("window_start"))
        keys = ["host", "class", "window_start"]
        counts = frame.group_by(keys).agg(pl.len().cast(pl.Int64).alias("count"))
        total = counts.join(self.state, on=keys, how="left", suffix="_before").select(
            *keys, (pl.col("count") + pl.col("count_before").fill_null(0)).alias("count")
        )
        self._keep_open(total)
        rate = total.select(*keys, pl.col("count").cast(pl.Float64).alias("rate"))
        return frame.join(rate, on=keys, how="left", maintain_order="left")

    def _keep_open(self, total: pl.DataFrame) -> None:
        """Only each host's latest window can still grow: older ones are forgotten."""
        merged = pl.concat([self.state, total.cast(COUNTER_SCHEMA)])  # type: ignore[arg-type]
        merged = merged.group_by(["host", "class", "window_start"]).agg(pl.col("count").max())
        latest = pl.col("window_start") == pl.col("window_start").max().over("host")
        self.state = merged.filter(latest).select(list(COUNTER_SCHEMA))
