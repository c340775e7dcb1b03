"""The network: activations, initializers (LSUV among them), the model, and the mean-field theory
of its signal propagation."""
