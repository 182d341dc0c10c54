"""Where the project's data folders live (model cards, calibrations, scenarios)."""

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
MODELS_DIR = REPO_ROOT / "models"
# FRONTIER_CALIBRATION_DIR selects another root of calibration folders, e.g.
# calibration/aiconfigurator (vLLM's kernels as NVIDIA timed them; calibration/README.md).
CALIBRATION_DIR = Path(os.environ.get("FRONTIER_CALIBRATION_DIR") or REPO_ROOT / "calibration").resolve()
SCENARIOS_DIR = REPO_ROOT / "simulate"
# ../shared beside the checkout holds reference data and traces (absent on a user's laptop).
SHARED_DIR = REPO_ROOT.parent / "shared"


def check_writable_dir(path: Path, what: str = "-o", label: str | None = None) -> None:
    """Refuse, before any work is done, an output folder that cannot be written.

    Missing folders are created for a probe file and removed again, so a refusal (or a later
    error) leaves nothing behind."""
    import os
    import tempfile

    from frontier.errors import FrontierError

    path = Path(path)
    label = label or f"{what} {path}"
    if path.exists() and not path.is_dir():
        raise FrontierError(f"{label}: {path} is a file, not a folder; give a folder for the results")
    created = []
    for p in reversed([path, *path.parents]):
        if p.exists():
            if not p.is_dir():
                raise FrontierError(f"{label}: {p} is a file, not a folder")
            continue
        try:
            p.mkdir()
        except OSError as exc:
            _remove(created)
            raise FrontierError(f"{label}: cannot create folder {p} ({exc.strerror or exc})") from None
        created.append(p)
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".frontier-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise FrontierError(f"{label}: folder {path} is not writable ({exc.strerror or exc})") from None
    finally:
        _remove(created)


def check_writable_file(path: Path, what: str = "-o") -> None:
    """Refuse an output file that is a folder or whose folder cannot be written."""
    import os

    from frontier.errors import FrontierError

    path = Path(path)
    if path.is_dir():
        raise FrontierError(f"{what} {path}: is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise FrontierError(f"{what} {path}: file is not writable")
    check_writable_dir(path.parent, what, label=f"{what} {path}")


def _remove(folders: list[Path]) -> None:
    for p in reversed(folders):
        try:
            p.rmdir()
        except OSError:
            pass
