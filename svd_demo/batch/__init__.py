"""Batch: sweeps, a grid of images and parameter values run through the studio, here or on a Ray cluster."""
