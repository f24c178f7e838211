"""Ensemble, sigma-point and particle filters."""
