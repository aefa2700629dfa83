"""GPU metrics: two normal trainings for a day then a hijack (JSON rows), plus a few
dcgm-exporter scrapes and nvidia-smi CSV lines."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from samplegen import ACCOUNT, fake_sha256, iso

DAY = datetime(2024, 5, 1, tzinfo=UTC)
WORKLOADS = (
    {
        "host": "gpu-train-01",
        "gpu_index": 0,
        "job_id": "ft-llama-7f3a",
        "job_name": "llm-finetune",
        "instance_type": "p4d.24xlarge",
        "region": "us-east-1",
        "idle_w": 58.0,
        "busy_w": 330.0,
    },
    {
        "host": "gpu-train-02",
        "gpu_index": 0,
        "job_id": "cv-resnet-22b1",
        "job_name": "vision-train",
        "instance_type": "g5.12xlarge",
        "region": "us-west-2",
        "idle_w": 24.0,
        "busy_w": 128.0,
    },
)


def gpu_rows(rng: random.Random) -> Iterator[dict[str, Any]]:
    """24 hours of 5-minute samples for each workload (training 08:00-19:00 UTC, idle
    otherwise), a job summary per workload, then the hijack of ft-llama-7f3a."""
    for step in range(288):
        t = DAY + timedelta(minutes=5 * step)
        for w in WORKLOADS:
            yield _sample(rng, w, t, busy=8 <= t.hour < 19)
    for w in WORKLOADS:
        yield _summary(w, DAY + timedelta(hours=19), 39_600, 48 * 2**30, 3 * 2**30)
    hijack = {
        **WORKLOADS[0],
        "host": "ip-172-31-9-14",
        "instance_type": "p5.48xlarge",
        "region": "ap-southeast-1",
        "idle_w": 90.0,
    }
    for step in range(36):
        t = DAY + timedelta(days=1, hours=1, minutes=5 * step)
        row = _sample(rng, hijack, t, busy=True)
        row.update(
            gpu_util=round(rng.uniform(98.6, 99.9), 1),
            mem_util=round(rng.uniform(11, 15), 1),
            power_watts=round(rng.uniform(655, 695), 1),
        )
        yield row
    yield _summary(hijack, DAY + timedelta(days=1, hours=4), 10_800, 96 * 2**20, 2 * 2**20)


def _context(w: dict[str, Any], t: datetime) -> dict[str, Any]:
    return {
        "timestamp": iso(t),
        "host": w["host"],
        "gpu_index": w["gpu_index"],
        "job_id": w["job_id"],
        "job_name": w["job_name"],
        "instance_type": w["instance_type"],
        "region": w["region"],
        "account": ACCOUNT,
        "provider": "aws",
    }


def _sample(rng: random.Random, w: dict[str, Any], t: datetime, busy: bool) -> dict[str, Any]:
    """Daytime training: 65-88 % with a slow wave and noise; idle: a few percent."""
    wave = math.sin(t.hour * math.pi / 6 + t.minute / 20)
    util = 76 + 6 * wave + rng.gauss(0, 3) if busy else rng.uniform(0, 3)
    util = min(max(util, 0.0), 88.0)
    power = w["idle_w"] + (w["busy_w"] - w["idle_w"]) * util / 88 + rng.gauss(0, 4)
    mem = 0.62 * util + rng.gauss(0, 2) if busy else rng.uniform(0, 1.5)
    return {
        **_context(w, t),
        "gpu_util": round(util, 1),
        "mem_util": round(max(mem, 0), 1),
        "power_watts": round(max(power, w["idle_w"] * 0.9), 1),
    }


def _summary(
    w: dict[str, Any], t: datetime, seconds: int, bytes_in: int, bytes_out: int
) -> dict[str, Any]:
    return {
        **_context(w, t),
        "instance_id": f"i-0{fake_sha256(w['host'])[:16]}",
        "duration_s": seconds,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
    }


# -- dcgm-exporter and nvidia-smi: a few scrapes of one node each -----------------------------

DCGM_FAMILIES = (
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", (1410, 1410)),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", (61, 66)),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", (280.0, 360.0)),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", (72, 90)),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", (38, 55)),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", (30112, 30240)),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", (10220, 10348)),
)
GPUS = (
    ("0", "GPU-3b5e8c1a-9d2f-4e6b-8a71-c0f4d2e9b611", "nvidia0"),
    ("1", "GPU-7d1f0a4c-2b8e-4f39-9c65-e1a3b7d5f802", "nvidia1"),
)


def dcgm_text(rng: random.Random) -> str:
    """Three scrapes of gpu-node-7 (two A100s): two stamped by a kestrel-scrape-time line,
    the last with dcgm-exporter's optional per-sample millisecond timestamps."""
    out: list[str] = []
    t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    for scrape in range(3):
        t = t0 + timedelta(seconds=30 * scrape)
        stamp = f" {int(t.timestamp() * 1000)}" if scrape == 2 else ""
        if not stamp:
            out.append(f"# kestrel-scrape-time: {iso(t)}")
        for family, kind, text, (lo, hi) in DCGM_FAMILIES:
            out += [f"# HELP {family} {text}", f"# TYPE {family} {kind}"]
            for gpu, gpu_uuid, device in GPUS:
                value = rng.uniform(lo, hi)
                shown = f"{value:.3f}" if isinstance(lo, float) else str(round(value))
                labels = (
                    f'gpu="{gpu}",UUID="{gpu_uuid}",device="{device}",'
                    f'modelName="NVIDIA A100-SXM4-40GB",Hostname="gpu-node-7",'
                    f'DCGM_FI_DRIVER_VERSION="535.161.08"'
                )
                out.append(f"{family}{{{labels}}} {shown}{stamp}")
    return "\n".join(out) + "\n"


def smi_text(rng: random.Random) -> str:
    """nvidia-smi --query-gpu=... --format=csv -l 5 on gpu-node-8 (two A10Gs), with the
    kestrel-host line that names the host; the second GPU reports no memory utilization."""
    header = (
        "timestamp, name, pci.bus_id, index, utilization.gpu [%], "
        "utilization.memory [%], power.draw [W], memory.used [MiB], temperature.gpu"
    )
    out = ["# kestrel-host: gpu-node-8", header]
    t0 = datetime(2024, 5, 1, 12, 0, 0, 412000, tzinfo=UTC)
    for step in range(4):
        t = t0 + timedelta(seconds=5 * step, milliseconds=step * 3)
        for index, bus in ((0, "00000000:00:1E.0"), (1, "00000000:00:1F.0")):
            stamp = t.strftime("%Y/%m/%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}"
            util = rng.randint(60, 85)
            mem = "[N/A]" if index == 1 else f"{rng.randint(30, 45)} %"
            out.append(
                f"{stamp}, NVIDIA A10G, {bus}, {index}, {util} %, {mem}, "
                f"{rng.uniform(120, 150):.2f} W, {rng.randint(15000, 16500)} MiB, "
                f"{rng.randint(55, 63)}"
            )
    return "\n".join(out) + "\n"
