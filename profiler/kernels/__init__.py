"""Triton kernels the profiler times where no library kernel exists on the machine.

- `paged_decode`: decode attention against a paged KV cache (block table, GQA, per-sequence
  lengths, split-KV), also the absorbed MLA form (one latent KV head, d = 512 + 64, dv = 512).
- `grouped_gemm`: one launch for all experts of an MoE projection, tokens sorted by expert
  (the layout of the fused-MoE kernels of serving engines).

Importing these modules imports triton; callers import them lazily.
"""
