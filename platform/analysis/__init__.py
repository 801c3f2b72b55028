"""Emergent-language analysis: measures over run logs and checkpoints."""
