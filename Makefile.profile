# GPU profiling (included from the main Makefile). On a machine with a CUDA GPU, torch and triton:
#   make profile GPU=h100-sxm               all families, full sweep (about 20-30 min on one H100)
#   make profile GPU=h100-sxm QUICK=1       a subset, under 8 minutes (time-boxed; a rerun resumes)
#   make profile GPU=h100-sxm QUICK=1 OPS=gemm,attn_decode
#   make profile-check                      the profiler's Triton kernels against PyTorch
#   make profile-dry-run                    every code path on the CPU with tiny shapes
#   make profile-plan GPU=h100-sxm QUICK=1  what would be measured, and an estimate of how long
# GPU defaults to the visible GPU's name in frontier/spec/gpus.yaml; OUT=DIR writes the tables and
# meta.json there instead of calibration/$(GPU)/; PROFILE_ARGS passes anything else.
PYTHON ?= python3
GPU ?=
QUICK ?=
OPS ?=
OUT ?=
PROFILE_ARGS ?=

PROFILE_FLAGS = $(if $(GPU),--gpu $(GPU)) $(if $(filter 1 yes true,$(QUICK)),--quick) \
	$(if $(OPS),--ops $(OPS)) $(if $(OUT),--out $(OUT)) $(PROFILE_ARGS)

.PHONY: profile profile-check profile-dry-run profile-plan

profile:
	$(PYTHON) -m profiler $(PROFILE_FLAGS)

profile-check:
	$(PYTHON) -m profiler --check

profile-dry-run:
	$(PYTHON) -m profiler --dry-run --out $(or $(OUT),/tmp/frontier-profile-dry-run) \
		$(if $(OPS),--ops $(OPS)) $(PROFILE_ARGS)

profile-plan:
	$(PYTHON) -m profiler --plan $(PROFILE_FLAGS)
