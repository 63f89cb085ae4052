"""svd-demo: a browser studio for Stable Video Diffusion.

Importing the package is cheap: no torch, diffusers or gradio import happens here, and nothing is downloaded.
"""

__version__ = "0.1.0"
