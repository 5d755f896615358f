"""`assay synth`: text -> vibes -> best-of-N music configs -> scores -> dataset splits (docs/synth.md)."""
