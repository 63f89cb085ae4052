"""The GPU benchmark, `python -m benchmarks.gpu`: speed and memory per profile, the headline table in ONE
time-boxed command (recorded in BENCHMARKS.md with its command).

On a GPU (any `cuda` or `cuda:N` device): SVD-XT's architecture with random weights, built on the GPU (nothing is
downloaded; real weights with --svd-model), 25 frames, 1024x576, 25 steps. On a CPU the same parts run on the
tiny test models at 256x144 (control flow only, no GPU figures) and finish in well under a minute.

Parts, in order of importance (each keeps back time for the ones after it):
  warmup    'high', 2 steps: CUDA context, cuBLAS/attention kernels; the estimates the budget works with
  baseline  the plain diffusers recipe: fp16, enable_model_cpu_offload, default decode (all frames at once)
  high      the app's own path (generate_frames), everything on the GPU; then the live preview's cost per step
  cache     high with feature caching, a row per setting (interval 3 branch 0, DeepCache's SVD setting; interval 2
            branch 1): the speed-up against high, and PSNR/SSIM of the frames against high's
  lane      AnimateLCM's 4-step lane (consistency sampler, guidance 1) end to end under 'high', against high's
            full step count (the `fast` child also times it compiled)
  fast      high + regional torch.compile, in a child process with a hard cap (--fast-cap-s):
            a compile that overruns is killed with its process group and the later parts still run
  balanced  model offload: 25 steps when the time allows, else fewer, extrapolated
  low       block-level group offload (UNet on a CUDA stream) + fp8 UNet storage + forward chunking, same way;
            PSNR against `high`'s frames (same seed) when both ran every step
  caps      simulated 8/12/16/24 GB cards (a per-process memory cap = card - the measured CUDA context): what
            `auto` picks given that card's (total, free) memory, and whether its run completes
  sdxl      the SDXL architecture, random weights, a 1024x576 still with 'high'
  minimal   leaf-level group offload + fp8 + decode chunk 1: a few steps, s/step extrapolated to 25 (said so)
  switch    profile switches after an offloaded run (low -> minimal -> high) leave the weights intact
  upscale   the upscalers (realesr-animevideov3 and RealESRGAN_x4plus architectures, random weights; tiny ones on a
            CPU): seconds per frame and peak memory, 2x of a frame of the clip's size, in the app's 512-px tiles
  keyframes keyframes to video (ViBiDSampler: a forward and a backward half per step) under 'high' at the same
            size: s/step and peak memory against image to video's ('high'), a few steps extrapolated to 25
  int8      `--quantize int8` (torchao int8 weight-only UNet) under `low`, PSNR against `high`; last, because
            quantizing the shared pipeline cannot be undone
Every timed run follows a warm-up of the same part at the same shapes (1 step; 2 for SDXL and for `fast`'s
compile), is synchronized with torch.cuda.synchronize(device) and has the device's peak statistics reset for it.

Time budget: --budget-s seconds (default 530) counted from --t0 (default: the start of this command). A part that
does not fit the time left minus what the later parts need shrinks its step count (extrapolated and labelled) or
is skipped with the reason; at the budget a watchdog writes the results and exits (code 3). 530 s keeps a
9-minute device command clear of its limit with the start-up included.

Results: OUT/results.json and OUT/summary.md (Markdown), rewritten after every part, so a run that is killed
still leaves them; OUT/progress.log holds the progress lines, each stamped with the clock and the seconds since
--t0. Every row is present: measured, or with the reason it was not. Exit codes: 0 done (see the rows for
skipped parts), 3 stopped at the budget, 2 could not start. On a lent GPU: `bash benchmarks/gpu_run.sh`
(installs the carried diffusers wheel first; BENCHMARKS.md has the device call).

Modules: cli (this command line), config (BenchConfig, the budgets and rows), parts (the ordered table of parts and
the loop that runs them), runner (the state the parts share, one timed run), parts_profiles, parts_speed,
parts_other (the parts), report (results.json, summary.md), device (the CUDA calls, the capped child process),
models (the full-size architectures).
"""
