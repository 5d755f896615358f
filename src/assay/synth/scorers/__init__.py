"""Scorers of the synthetic-data pipeline: each puts a number on a music payload made for a vibe
(`base.Scorer`); `assay synth score` builds them by name (`score.build_scorers`)."""
