"""The search for one image: the state machine, candidate images, model evaluation, the oracle."""
