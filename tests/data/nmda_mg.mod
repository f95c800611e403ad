COMMENT
Test-only reference mechanism: Exp2Syn-style two-exponential conductance with the
Jahr & Stevens (1990) Mg2+ block, i = (B - A) * (v - e) / (1 + mg/3.57 * exp(-0.062 v)).
Used by tests/test_mc_neuron.py to compare cosim's NMDA synapse with NEURON.
ENDCOMMENT

NEURON {
    POINT_PROCESS NMDAMg
    RANGE tau1, tau2, e, i, g, mg
    NONSPECIFIC_CURRENT i
}

UNITS {
    (nA) = (nanoamp)
    (mV) = (millivolt)
    (uS) = (microsiemens)
    (mM) = (milli/liter)
}

PARAMETER {
    tau1 = 2 (ms) <1e-9,1e9>
    tau2 = 80 (ms) <1e-9,1e9>
    e = 0 (mV)
    mg = 1 (mM)
}

ASSIGNED {
    v (mV)
    i (nA)
    g (uS)
    factor
}

STATE {
    A (uS)
    B (uS)
}

INITIAL {
    LOCAL tp
    if (tau1/tau2 > 0.9999) {
        tau1 = 0.9999*tau2
    }
    A = 0
    B = 0
    tp = (tau1*tau2)/(tau2 - tau1) * log(tau2/tau1)
    factor = 1/(exp(-tp/tau2) - exp(-tp/tau1))
}

BREAKPOINT {
    SOLVE state METHOD cnexp
    g = B - A
    i = g*(v - e)/(1 + mg/3.57*exp(-0.062*v))
}

DERIVATIVE state {
    A' = -A/tau1
    B' = -B/tau2
}

NET_RECEIVE(weight (uS)) {
    A = A + weight*factor
    B = B + weight*factor
}
