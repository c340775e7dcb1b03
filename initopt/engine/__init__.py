"""The training engine: trials as one compiled program, the jitted epoch, a run's directory
(checkpoints, resume, metrics), instruments inside the loop, devices and processes, memory budget."""
