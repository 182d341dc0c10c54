"""Where the project's data folders live (model cards, calibrations, scenarios)."""
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
MODELS_DIR = REPO_ROOT / "models"
CALIBRATION_DIR = REPO_ROOT / "calibration"
SCENARIOS_DIR = REPO_ROOT / "simulate"
# ../shared beside the checkout holds reference data and traces (absent on a user's laptop).
SHARED_DIR = REPO_ROOT.parent / "shared"
