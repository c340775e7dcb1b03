"""The process: what a command decides once per process (JAX's PRNG and compilation cache, numpy's
BLAS threads, the garbage collector, a fast exit), XLA's compilations counted, and the versions
and devices a run records."""
