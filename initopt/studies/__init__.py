"""The studies each command runs on the engine: init statistics, training comparisons, tuning,
depth theory against networks, 2D surfaces, and the statistics of their comparisons."""
