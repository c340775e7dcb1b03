"""The optimizers: hand-written GradientTransformations, what an optimizer name means (built-in,
optax's, the user's), hyperparameters as data, learning-rate schedules."""
