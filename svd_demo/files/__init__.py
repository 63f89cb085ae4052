"""Files: images and videos in and out (headers read before pixels, streaming writers, the outputs folder).

Above core, below the engine: the engine's interpolation and upscaling stream frames through these readers and
writers.
"""
