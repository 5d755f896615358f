"""Pipelines and experiments that chain training, evaluation and reports."""
