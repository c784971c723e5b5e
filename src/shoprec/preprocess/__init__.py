"""Cleaning, weighting, k-core and text vectors: pure functions over records and Interactions."""
