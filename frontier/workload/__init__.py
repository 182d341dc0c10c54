"""Workloads: the requests a simulated deployment serves, synthetic or replayed from a trace.

spec = WorkloadSpec.from_dict(scenario["workload"], base_dir=scenario_dir)
requests = build_requests(spec, np.random.default_rng(seed))   # -> RequestTable
azure = load_trace("simulate/traces/azure_conv.csv")
"""

from frontier.workload.build import build_requests
from frontier.workload.requests import RequestTable
from frontier.workload.spec import ArrivalSpec, LengthSpec, TraceSpec, WorkloadSpec
from frontier.workload.traces import load_trace

__all__ = [
    "ArrivalSpec",
    "LengthSpec",
    "RequestTable",
    "TraceSpec",
    "WorkloadSpec",
    "build_requests",
    "load_trace",
]
