"""Multi-pass self-correction pipeline: datasets in, checked answers and traces out."""
