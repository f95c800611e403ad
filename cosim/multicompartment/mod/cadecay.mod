COMMENT
Calcium pool with first-order decay in a shell under the membrane: Destexhe A, Babloyantz
A, Sejnowski TJ (1993) Ionic mechanisms for intrinsic slow oscillations in thalamic relay
neurons. Biophys J 65:1538-1552; in the form of Hay et al. (2011) PLoS Comput Biol
7:e1002107 (CaDynamics_E2):

    dcai/dt = -10000 * gamma * ica / (2 F depth) - (cai - minCai) / decay

10000 converts ica (mA/cm2) / depth (um) / F (C/mol) to mM/ms.  Units: cai, minCai mM;
ica mA/cm2; depth um; decay ms; gamma (the fraction of free calcium) dimensionless.
ENDCOMMENT

NEURON {
    SUFFIX cadecay
    USEION ca READ ica WRITE cai
    RANGE gamma, decay, depth, minCai
}

UNITS {
    (mV) = (millivolt)
    (mA) = (milliamp)
    (mM) = (milli/liter)
    (um) = (micron)
    FARADAY = (faraday) (coulomb)
}

PARAMETER {
    gamma = 0.05
    decay = 80 (ms)
    depth = 0.1 (um)
    minCai = 1e-4 (mM)
}

ASSIGNED {
    ica (mA/cm2)
}

STATE { cai (mM) }

INITIAL {
    cai = minCai
}

BREAKPOINT {
    SOLVE states METHOD cnexp
}

DERIVATIVE states {
    cai' = -(10000) * (ica * gamma / (2 * FARADAY * depth)) - (cai - minCai) / decay
}
