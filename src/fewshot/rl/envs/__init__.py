"""Environments of the task families: point navigation (numpy) and HalfCheetah variants (MuJoCo)."""
