"""Operator latency predictors: calibrated XGBoost models, published-NCCL collectives, roofline.

`load_predictor(gpu)` builds the `Predictor` the simulator uses for a GPU:
- a family with a trained model in calibration/<gpu>/predictors/ -> XGBoost ("xgboost");
- collectives without a measured table -> the alpha-beta fit to published NCCL figures stored in
  calibration/<gpu>/meta.json ("alpha-beta fit"), else the GPU spec's alpha-beta ("alpha-beta");
- anything else -> the roofline of the GPU spec ("roofline").
`Predictor.sources()` says which is which. Loading never trains (run `frontier train`).
"""
from __future__ import annotations

from pathlib import Path

from frontier.predict.base import Predictor


def load_predictor(gpu, calibration_dir: Path | str | None = None, lazy: bool = True) -> Predictor:
    """The predictor of a GPU (a GPUSpec or a name) from its calibration folder.

    `lazy`: each XGBoost model file is read at the family's first prediction (about 40 ms each),
    so start-up costs only what the simulated model uses."""
    import json

    from frontier.ops.operators import FAMILIES
    from frontier.paths import CALIBRATION_DIR
    from frontier.predict.collective import CollectiveFitModel
    from frontier.predict.roofline import AlphaBetaModel, RooflineModel
    from frontier.spec.hardware import GPUSpec, get_gpu

    spec = gpu if isinstance(gpu, GPUSpec) else get_gpu(gpu)
    gpu_dir = Path(calibration_dir or CALIBRATION_DIR) / spec.name  # (no pandas import here)
    models = {}
    pred_dir = gpu_dir / "predictors"
    if pred_dir.is_dir():
        from frontier.predict.xgb import XGBoostFamilyModel

        for family in FAMILIES:
            model = XGBoostFamilyModel.load(family, spec, pred_dir, lazy=lazy)
            if model is not None:
                models[family] = model
    if "collective" not in models:
        meta = gpu_dir / "meta.json"
        fit = json.loads(meta.read_text()).get("collective_fit") if meta.exists() else None
        if fit and fit.get("fits"):
            models["collective"] = CollectiveFitModel(fit["fits"], fallback=AlphaBetaModel(spec),
                                                      source="alpha-beta fit")
        else:
            models["collective"] = AlphaBetaModel(spec)
    return Predictor(spec.name, models, RooflineModel(spec))


__all__ = ["Predictor", "load_predictor"]
