"""The offline package never imports torch (only the profiler does, lazily)."""

import subprocess
import sys

CODE = """
import sys
from frontier.cli import main
from frontier.spec.scenario import load_scenario
from frontier.sim.run import run_scenario
from frontier.paths import SCENARIOS_DIR
import frontier.validate.cli, frontier.predict.cli, profiler
sc = load_scenario(SCENARIOS_DIR / "qwen3-30b-a3b-dp2-ep2.yaml")
res = run_scenario(sc, timeline=False)
assert res.summary["completed"] > 0
print("torch" in sys.modules, "triton" in sys.modules)
"""


def test_simulating_and_importing_the_cli_never_imports_torch():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "False"]
