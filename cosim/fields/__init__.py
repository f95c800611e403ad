"""Neural fields: connectivity kernels, firing functions and the periodic sheet.

- :mod:`.kernels` — radial kernels w(r) (Gaussian, difference of Gaussians, exponential,
  a user's radial profile) with their Fourier transforms ŵ(k) and second moments;
- :mod:`.firing` — firing functions S(u) (logistic, erf) and their slopes;
- :mod:`.sheet` — the periodic grid (1-D ring or 2-D torus), FFT convolution and the
  explicit integrators of ``τ ∂u/∂t = −u + w ⊛ S(u(t − d)) + I``.

The engine that runs a sheet in a scenario is :mod:`cosim.engines.neural_field`; the
linear theory (dispersion relation, Turing and Hopf onsets) is :mod:`cosim.analysis.dispersion`.
"""
