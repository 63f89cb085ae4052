"""Feature caching across denoising steps for the SVD UNet (the idea of DeepCache, Ma et al. 2023; our own hooks).

Between neighbouring denoising steps the UNet's deep, low-resolution features barely change; the shallow blocks at
full latent resolution are what follow the input closely. So on a *full* step the whole UNet runs and the output of
the deep part (what the shallowest up blocks receive) is kept; on the steps in between only the shallow path runs:
`conv_in`, the first `depth` down blocks, the last `depth` up blocks fed the kept feature, and `conv_out`. The skip
connections of the shallow levels are fresh on every step, which is what keeps the result close to the plain run.

It is done with diffusers' hook registry (the mechanism its own caches and group offloading use) on the deep blocks,
installed for one generation by `feature_cache(...)` and removed when it ends, also when it fails: the UNet's
weights and code are never changed, so the next run without caching is a plain run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

HOOK_NAME = "svd_demo_feature_cache"
DEFAULT_INTERVAL = 2  # a full step, then one that reuses it: "alternate steps"
DEFAULT_DEPTH = 1  # shallow levels recomputed on a reused step (SVD-XT has 4 levels, the tiny test UNet 2)


@dataclass
class CacheStats:
    """What one cached generation did; shared by the hooks of one `feature_cache` block."""

    interval: int
    depth: int
    full_steps: int = 0
    reused_steps: int = 0
    reuse: bool = False  # the UNet call in progress skips the deep blocks
    feature: Any = None  # the deep part's output from the last full step
    input_shape: tuple[int, ...] | None = None  # the `conv_in` input it was computed for
    down_outputs: dict[int, int] = field(default_factory=dict)  # skip connections each skipped down block returns

    def as_record(self) -> dict[str, int]:
        """For the sidecar: how many steps ran the whole UNet and how many reused its deep features."""
        return {"interval": self.interval, "depth": self.depth, "full_steps": self.full_steps,
                "reused_steps": self.reused_steps}


def _hook_classes() -> tuple[type, type]:
    """The two hooks, built on diffusers' ModelHook (imported here: importing svd_demo must not import torch)."""
    from diffusers.hooks import ModelHook

    class StepHook(ModelHook):
        """On `conv_in`, which runs once at the start of every UNet call: decides whether this call reuses."""

        def __init__(self, stats: CacheStats) -> None:
            super().__init__()
            self.stats = stats

        def pre_forward(self, module: Any, *args: Any, **kwargs: Any) -> tuple[tuple[Any], dict[str, Any]]:
            s = self.stats
            sample = args[0] if args else kwargs["input"]
            step = s.full_steps + s.reused_steps
            # Reuse only what was computed for the same shape (batch x frames, size): a new shape is a full step.
            s.reuse = s.feature is not None and step % s.interval != 0 and tuple(sample.shape) == s.input_shape
            if s.reuse:
                s.reused_steps += 1
            else:
                s.full_steps += 1
                s.input_shape = tuple(sample.shape)
            return args, kwargs

    class SkipHook(ModelHook):
        """On a deep block: runs it on full steps (keeping the feature if it is the last one), skips it otherwise.

        A skipped block returns placeholders of the right structure: the UNet's forward still unpacks a down
        block's skip connections and hands them to the matching (also skipped) up block, which ignores them.
        """

        def __init__(self, stats: CacheStats, kind: str, index: int, keeps_feature: bool = False) -> None:
            super().__init__()
            self.stats, self.kind, self.index, self.keeps_feature = stats, kind, index, keeps_feature

        def new_forward(self, module: Any, *args: Any, **kwargs: Any) -> Any:
            s = self.stats
            if not s.reuse:
                output = self.fn_ref.original_forward(*args, **kwargs)
                if self.kind == "down":
                    s.down_outputs[self.index] = len(output[1])
                if self.keeps_feature:
                    s.feature = output
                return output
            if self.keeps_feature:
                return s.feature
            hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
            if self.kind == "down":
                return hidden, (hidden,) * s.down_outputs[self.index]
            return hidden

    return StepHook, SkipHook


def _check(unet: Any, interval: int, depth: int) -> None:
    if not all(hasattr(unet, name) for name in ("conv_in", "down_blocks", "mid_block", "up_blocks")):
        raise ValueError(f"Feature caching needs a spatio-temporal UNet (SVD's); got {type(unet).__name__}.")
    if not isinstance(interval, int) or interval < 1:
        raise ValueError(f"Feature caching `interval` must be a whole number of at least 1; got {interval!r}.")
    levels = len(unet.down_blocks)
    if not isinstance(depth, int) or not 1 <= depth < levels:
        raise ValueError(f"Feature caching `depth` must be from 1 to {levels - 1} for this UNet ({levels} levels); "
                         f"got {depth!r}.")


@contextmanager
def feature_cache(unet: Any, interval: int = DEFAULT_INTERVAL, depth: int = DEFAULT_DEPTH) -> Iterator[CacheStats]:
    """Within the block, every `interval`-th UNet call runs in full and the others reuse its deep features.

    Meant around exactly one generation (the step count starts at its first UNet call); the hooks and the kept
    feature are gone when the block ends. The kept feature costs one activation of the deep part's output in memory
    (for SVD-XT at 1024x576, 25 frames, fp16 with guidance: about 0.6 GB).
    """
    _check(unet, interval, depth)
    from diffusers.hooks import HookRegistry

    step_hook, skip_hook = _hook_classes()
    stats = CacheStats(interval=interval, depth=depth)
    levels = len(unet.up_blocks)
    keeper = levels - depth - 1  # the last up block of the deep part: its output is what the shallow levels need
    hooks: list[tuple[Any, Any]] = [(unet.conv_in, step_hook(stats))]
    hooks += [(block, skip_hook(stats, "down", i)) for i, block in enumerate(unet.down_blocks) if i >= depth]
    hooks.append((unet.mid_block, skip_hook(stats, "mid", 0)))
    hooks += [(block, skip_hook(stats, "up", i, keeps_feature=i == keeper)) for i, block in enumerate(unet.up_blocks)
              if i <= keeper]
    registered: list[Any] = []
    try:
        for module, hook in hooks:
            registry = HookRegistry.check_if_exists_or_initialize(module)
            registry.register_hook(hook, HOOK_NAME)
            registered.append(registry)
        yield stats
    finally:
        for registry in registered:
            registry.remove_hook(HOOK_NAME, recurse=False)
        stats.feature = None  # the kept activation is not needed past the generation
