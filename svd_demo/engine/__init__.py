"""Engine: the models and the frame work. Pipelines and their memory settings, samplers and schedulers, feature
caching, live preview, LoRA loading, hub downloads, interpolation and upscaling.

Plain functions of parameters and frames; no notion of a request's sidecar, a queue or a front end.
"""
