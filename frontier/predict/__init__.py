"""Operator latency predictors: calibrated XGBoost models, published-NCCL collectives, roofline.

`load_predictor(gpu)` builds the `Predictor` the simulator uses for a GPU:
- a family with a trained model in calibration/<gpu>/predictors/ -> XGBoost ("xgboost");
- collectives without a measured table -> the alpha-beta fit to published NCCL figures stored in
  calibration/<gpu>/meta.json ("alpha-beta fit"), else the GPU spec's alpha-beta ("alpha-beta");
- anything else -> the roofline of the GPU spec ("roofline").
GEMMs in other dtypes than the measured bf16 (FP8, 4-bit weights), and every family of a GPU
without a calibration of its own, are the measured predictions scaled by roofline ratios
(`frontier.predict.scaled`; from the nearest calibrated GPU), flagged "roofline-scaled".
`Predictor.sources()` says which is which. Loading never trains (run `frontier train`).
"""

from __future__ import annotations

from pathlib import Path

from frontier.predict.base import Predictor


def load_predictor(gpu, calibration_dir: Path | str | None = None, lazy: bool = True) -> Predictor:
    """The predictor of a GPU (a GPUSpec or a name) from its calibration folder.

    `lazy`: each XGBoost model file is read at the family's first prediction (about 40 ms each),
    so start-up costs only what the simulated model uses."""
    from frontier.paths import CALIBRATION_DIR
    from frontier.spec.hardware import GPUSpec, get_gpu

    spec = gpu if isinstance(gpu, GPUSpec) else get_gpu(gpu)
    root = Path(calibration_dir or CALIBRATION_DIR)
    ref = spec
    if not (root / spec.name / "predictors").is_dir():
        from frontier.predict.scaled import nearest_calibrated

        ref = nearest_calibrated(spec, [get_gpu(n) for n in calibrated_gpus(root)]) or spec
    return _scaled(_measured(ref, root, lazy), ref, spec, root)


def _measured(spec, root: Path, lazy: bool) -> Predictor:
    """The GPU's own predictors, as its calibration folder has them."""
    import json

    from frontier.ops.operators import FAMILIES
    from frontier.predict.collective import CollectiveFitModel
    from frontier.predict.roofline import AlphaBetaModel, RooflineModel

    gpu_dir = root / spec.name  # (no pandas import here)
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
            models["collective"] = CollectiveFitModel(
                fit["fits"], fallback=AlphaBetaModel(spec), source="alpha-beta fit"
            )
        else:
            models["collective"] = AlphaBetaModel(spec)
    return Predictor(spec.name, models, RooflineModel(spec))


def calibrated_gpus(calibration_dir: Path | str | None = None) -> list[str]:
    """GPUs with trained predictors under the calibration folder."""
    from frontier.paths import CALIBRATION_DIR

    root = Path(calibration_dir or CALIBRATION_DIR)
    return sorted(p.parent.name for p in root.glob("*/predictors") if any(p.glob("*.json")))


def _scaled(predictor: Predictor, ref, gpu, root: Path) -> Predictor:
    """`predictor` (of `ref`) answering for `gpu` and for unmeasured GEMM dtypes."""
    from frontier.predict.roofline import RooflineModel
    from frontier.predict.scaled import ScaledModel, measured_dtypes

    def scaled(family, model):
        return ScaledModel(model, ref, gpu, measured_dtypes(root / ref.name, family))

    if ref.name == gpu.name:  # only the GEMM families see other dtypes
        models = dict(predictor.models)
        for family in ("gemm", "grouped_gemm"):
            if family in models:
                models[family] = scaled(family, models[family])
        return Predictor(gpu.name, models, predictor.fallback)
    models = {f: scaled(f, m) for f, m in predictor.models.items() if m.source != "roofline"}
    return Predictor(gpu.name, models, RooflineModel(gpu))


__all__ = ["Predictor", "load_predictor"]
