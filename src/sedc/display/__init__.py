"""Figures of explanations: :func:`~sedc.display.figure.plot` (original | removed regions |
counterfactual)."""
