"""Deployment search: simulate every feasible configuration at every load point, keep the Pareto
frontier of tokens/s/GPU vs tokens/s/user, and name the best one under the SLO.

    spec = load_sweep_spec("sweeps/llama3.1-70b-8xh100.yaml")     # or sweep_spec_from_dict({...})
    result = run_sweep(spec, "results/sweep", jobs=2)          # -> SweepResult (results DataFrame)
    write_outputs(result)                                      # pareto.csv, best.json, pareto.png

(The package is `search`, as in the design's layout; `frontier.sweep` is the Python API's
function, which a subpackage of that name would shadow once imported.)

spec.py (the sweep file) -> space.py (configurations, infeasible ones with reasons) -> run.py
(process pool / Ray, streaming, resume, early stop) -> pareto.py -> report.py (files, commands
from commands.py).
"""

from frontier.search.report import write_outputs
from frontier.search.run import SweepResult, run_sweep
from frontier.search.spec import SweepSpec, load_sweep_spec, sweep_spec_from_dict

__all__ = ["SweepResult", "SweepSpec", "load_sweep_spec", "run_sweep", "sweep_spec_from_dict", "write_outputs"]
