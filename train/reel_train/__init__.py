"""Reel's trainer: the Swift denoiser and text encoder in PyTorch, synthetic data, training."""
