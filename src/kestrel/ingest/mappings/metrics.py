"""GPU / workload metrics: source names → Kestrel's metric names and units, as tables.

The same quantity gets the same ``metric_name`` whichever tool measured it (dcgm-exporter's
``DCGM_FI_DEV_GPU_UTIL``, nvidia-smi's ``utilization.gpu`` and the JSON form's ``gpu_util``
are all ``gpu_util`` in percent), so one baseline per (entity, metric) covers every source.
The source's own name stays in ``source_event``. A name no table knows keeps its own name
and gets no unit.
"""

from __future__ import annotations

from typing import NamedTuple


class MetricSpec(NamedTuple):
    """Kestrel's name and unit for one source metric."""

    name: str
    unit: str | None


# dcgm-exporter families (its default counters plus the common profiling ones).
DCGM: dict[str, MetricSpec] = {
    "DCGM_FI_DEV_GPU_UTIL": MetricSpec("gpu_util", "percent"),
    "DCGM_FI_DEV_MEM_COPY_UTIL": MetricSpec("mem_util", "percent"),
    "DCGM_FI_DEV_ENC_UTIL": MetricSpec("enc_util", "percent"),
    "DCGM_FI_DEV_DEC_UTIL": MetricSpec("dec_util", "percent"),
    "DCGM_FI_DEV_POWER_USAGE": MetricSpec("power_watts", "watts"),
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": MetricSpec("energy_mj", "millijoules"),
    "DCGM_FI_DEV_GPU_TEMP": MetricSpec("gpu_temp", "celsius"),
    "DCGM_FI_DEV_MEMORY_TEMP": MetricSpec("mem_temp", "celsius"),
    "DCGM_FI_DEV_SM_CLOCK": MetricSpec("sm_clock", "MHz"),
    "DCGM_FI_DEV_MEM_CLOCK": MetricSpec("mem_clock", "MHz"),
    "DCGM_FI_DEV_FB_USED": MetricSpec("fb_used", "MiB"),
    "DCGM_FI_DEV_FB_FREE": MetricSpec("fb_free", "MiB"),
    "DCGM_FI_DEV_FB_TOTAL": MetricSpec("fb_total", "MiB"),
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": MetricSpec("pcie_replays", "count"),
    "DCGM_FI_DEV_XID_ERRORS": MetricSpec("xid_error", None),
    "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL": MetricSpec("nvlink_bandwidth", None),
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": MetricSpec("gr_engine_active", "ratio"),
    "DCGM_FI_PROF_SM_ACTIVE": MetricSpec("sm_active", "ratio"),
    "DCGM_FI_PROF_SM_OCCUPANCY": MetricSpec("sm_occupancy", "ratio"),
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": MetricSpec("tensor_active", "ratio"),
    "DCGM_FI_PROF_DRAM_ACTIVE": MetricSpec("dram_active", "ratio"),
    "DCGM_FI_PROF_PCIE_TX_BYTES": MetricSpec("pcie_tx_bytes", "bytes/s"),
    "DCGM_FI_PROF_PCIE_RX_BYTES": MetricSpec("pcie_rx_bytes", "bytes/s"),
}

# Prometheus label → column; the first label present wins (dcgm-exporter writes `Hostname`
# and `gpu`; on Kubernetes it adds `pod` / `container`; HPC job mapping adds `hpc_job`).
PROMETHEUS_LABELS: dict[str, tuple[str, ...]] = {
    "host": ("Hostname", "hostname", "host", "node"),
    "gpu_index": ("gpu",),
    "instance_type": ("instance_type", "node_kubernetes_io_instance_type"),
    "job_id": ("job_id", "hpc_job", "pod"),
    "job_name": ("job_name", "container"),
    "cloud_provider": ("provider", "cloud_provider"),
    "cloud_account": ("account", "cloud_account"),
    "cloud_region": ("region", "cloud_region", "topology_kubernetes_io_region"),
}

# nvidia-smi --query-gpu properties (header name without the ``[unit]`` part).
NVIDIA_SMI: dict[str, MetricSpec] = {
    "utilization.gpu": MetricSpec("gpu_util", "percent"),
    "utilization.memory": MetricSpec("mem_util", "percent"),
    "utilization.encoder": MetricSpec("enc_util", "percent"),
    "utilization.decoder": MetricSpec("dec_util", "percent"),
    "power.draw": MetricSpec("power_watts", "watts"),
    "power.limit": MetricSpec("power_limit_watts", "watts"),
    "memory.used": MetricSpec("fb_used", "MiB"),
    "memory.free": MetricSpec("fb_free", "MiB"),
    "memory.total": MetricSpec("fb_total", "MiB"),
    "temperature.gpu": MetricSpec("gpu_temp", "celsius"),
    "temperature.memory": MetricSpec("mem_temp", "celsius"),
    "clocks.sm": MetricSpec("sm_clock", "MHz"),
    "clocks.current.sm": MetricSpec("sm_clock", "MHz"),
    "clocks.mem": MetricSpec("mem_clock", "MHz"),
    "clocks.current.memory": MetricSpec("mem_clock", "MHz"),
    "fan.speed": MetricSpec("fan_speed", "percent"),
}

# nvidia-smi properties that describe the GPU rather than measure it: kept in ``raw`` only
# (``index`` fills gpu_index, ``timestamp`` the time), never turned into metrics.
NVIDIA_SMI_TEXT: frozenset[str] = frozenset({
    "timestamp", "name", "gpu_name", "index", "uuid", "gpu_uuid", "serial", "gpu_serial",
    "pci.bus_id", "gpu_bus_id", "driver_version", "vbios_version", "pstate", "compute_mode",
    "persistence_mode", "display_mode", "mig.mode.current", "count",
})  # fmt: skip

# Units as nvidia-smi writes them in its header (``power.draw [W]``) → Kestrel's spelling.
UNITS: dict[str, str] = {"%": "percent", "W": "watts", "MiB": "MiB", "MHz": "MHz", "C": "celsius"}

# The JSON form: fields that describe the row (the rest, when numeric, are metrics).
JSON_CONTEXT: frozenset[str] = frozenset({
    "timestamp", "host", "gpu_index", "instance_type", "instance_id", "job_id", "job_name",
    "provider", "account", "region", "metric_name", "metric_value", "metric_unit",
})  # fmt: skip

# The JSON form's known metric fields and their units; a known field that is not a number
# (or null) rejects the row, an unknown numeric field is a metric without a unit.
JSON_UNITS: dict[str, str] = {
    "gpu_util": "percent",
    "mem_util": "percent",
    "power_watts": "watts",
    "gpu_temp": "celsius",
    "fb_used": "MiB",
    "duration_s": "seconds",
    "bytes_in": "bytes",
    "bytes_out": "bytes",
}
