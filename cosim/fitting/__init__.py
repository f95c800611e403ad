"""Fitting scenarios to empirical functional data, and asking what the data pin down.

``cosim fit FIT.toml`` — a *fit description* (:mod:`cosim.fitting.spec`, declared in
:mod:`cosim.fitting.declarations`) names a base scenario, free parameters with bounds, an
empirical target (FC and/or FCD), a loss and an optimiser; every evaluation is one scenario
variant run to its own output file, logged so that a fit resumes where it stopped
(:mod:`cosim.fitting.driver`).  ``cosim identify FIT.toml`` — local sensitivity and profile
likelihoods (:mod:`cosim.fitting.identify`).

Modules: ``declarations`` (every key of a fit file, once), ``spec`` (reading a fit file),
``data`` (empirical matrices and time series, ``pkg:`` paths), ``objective`` (observables,
losses, one evaluation), ``optimizers`` (grid, CMA-ES), ``driver`` (waves, parallel
execution, the evaluation log), ``worker`` (one MPI rank), ``identify``, ``report``
(figures, summary), ``cli``.
"""
