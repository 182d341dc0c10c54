"""What the profiler runs on: the runtime check and the facts recorded in meta.json."""

from __future__ import annotations

import datetime as _dt
import importlib
import importlib.util
import os
import platform
import shutil
import socket
import subprocess
import sys


def runtime_problem(dry_run: bool) -> str | None:
    """One line saying why the profiler cannot run here, or None when it can."""
    try:
        import torch
    except Exception as exc:  # ImportError, or a broken install
        need = "a CPU build is enough for --dry-run" if dry_run else "install torch and triton on the GPU machine"
        return f"torch is not importable ({exc}); {need}"
    missing = [
        name for name, module in (("PyYAML", "yaml"), ("numpy", "numpy")) if not importlib.util.find_spec(module)
    ]
    if missing:
        return (
            f"{' and '.join(missing)} not importable here (the model cards are YAML, the operator graph "
            f"uses numpy): pip install {' '.join(missing)}"
        )
    if dry_run:
        return None
    if not torch.cuda.is_available():
        return (
            "no CUDA GPU visible (torch.cuda.is_available() is False); use --dry-run to exercise the code paths on CPU"
        )
    if importlib.util.find_spec("triton") is None:
        return (
            "triton is not importable; install the triton that matches torch "
            f"{torch.__version__} (the Triton kernels are part of the measurement)"
        )
    return None


def has_triton() -> bool:
    return importlib.util.find_spec("triton") is not None


def use_triton_interpreter() -> bool:
    """On a CPU dry run, run the Triton kernels in Triton's interpreter (when triton is installed).

    The interpreter must be chosen before triton is first imported.
    """
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        return False
    os.environ["TRITON_INTERPRET"] = "1"
    return has_triton()


def module_version(name: str) -> str | None:
    if importlib.util.find_spec(name) is None:
        return None
    try:
        module = importlib.import_module(name)
    except Exception:
        return None
    return str(getattr(module, "__version__", "unknown"))


def _nvidia_smi(query: str) -> str | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run(
            [exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def device_facts(device: str) -> dict:
    import torch

    facts: dict = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": module_version("triton"),
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "device": device,
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        facts.update(
            {
                "gpu_name": props.name,
                "sm_count": props.multi_processor_count,
                "memory_gib": round(props.total_memory / 2**30, 2),
                "compute_capability": f"{props.major}.{props.minor}",
                "l2_bytes": getattr(props, "L2_cache_size", None),
                "gpu_count": torch.cuda.device_count(),
                "cudnn": _safe(lambda: torch.backends.cudnn.version()),
                "nccl": _safe(lambda: _version_text(torch.cuda.nccl.version())),
            }
        )
        smi = _nvidia_smi("driver_version,clocks.max.sm,clocks.max.mem,clocks.sm,power.limit")
        if smi:
            parts = [p.strip() for p in smi.split(",")]
            keys = ("driver", "sm_clock_max_mhz", "mem_clock_max_mhz", "sm_clock_now_mhz", "power_limit_w")
            facts.update({k: _number(v) for k, v in zip(keys, parts)})
            if isinstance(facts.get("sm_clock_max_mhz"), (int, float)):
                facts["sm_clock_mhz"] = facts["sm_clock_max_mhz"]
    else:
        facts.update({"gpu_name": "cpu (dry run)", "sm_count": 0, "gpu_count": 0, "cpu_count": os.cpu_count()})
    optional = {name: module_version(name) for name in ("flash_attn", "flashinfer", "vllm", "sglang")}
    facts["optional_kernels"] = {k: v for k, v in optional.items() if v}
    return facts


def _safe(fn):
    """A fact that some torch builds lack: None rather than a failed run at the very end."""
    try:
        return fn()
    except Exception:
        return None


def _version_text(v) -> str:
    return ".".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)


def _number(text: str):
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() else value


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
