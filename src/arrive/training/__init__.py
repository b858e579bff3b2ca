"""Offline training: datasets, splits, fitting, evaluation and reports."""
