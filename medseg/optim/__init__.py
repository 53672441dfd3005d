"""Optimiser and learning-rate schedule helpers (most optimisers come straight from torch/timm)."""
