COMMENT
Two-exponential conductance synapse (NEURON's Exp2Syn kinetics) with Tsodyks-Markram
short-term plasticity per NetCon, matching cosim's AMPA / GABA_A receptors
(cosim/multicompartment/synapses.py, stp.py).

    g = B - A,  A' = -A/tau1,  B' = -B/tau2   (uS; cnexp: exact exponential decay)
    i = g*(v - e)                              (nA)
    on an event of weight w: A += w*u*x*factor, B += w*u*x*factor
    factor = 1/(exp(-tp/tau2) - exp(-tp/tau1)), tp = tau1*tau2/(tau2 - tau1)*ln(tau2/tau1)

Tsodyks-Markram state per NetCon (weight vector: w, U, tau_rec, tau_fac, u, x, tlast),
updated at each event with D = t - tlast:
    u <- u*exp(-D/tau_fac) (0 when tau_fac = 0);  u <- u + U*(1 - u)
    x <- 1 - (1 - x)*exp(-D/tau_rec) (1 when tau_rec = 0);  transmit w*u*x;  x <- x - u*x
Before the first event u = 0, x = 1.  U = 1, tau_rec = 0, tau_fac = 0 (the NetCon default
when only weight[0] is set, see the INITIAL below) transmits w: no plasticity.
ENDCOMMENT

NEURON {
    POINT_PROCESS CosimExp2Syn
    RANGE tau1, tau2, e, i, g
    NONSPECIFIC_CURRENT i
}

UNITS {
    (nA) = (nanoamp)
    (mV) = (millivolt)
    (uS) = (microsiemens)
}

PARAMETER {
    tau1 = 0.2 (ms) <1e-9,1e9>
    tau2 = 2 (ms) <1e-9,1e9>
    e = 0 (mV)
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
    if (tau1/tau2 < 1e-9) {
        tau1 = tau2*1e-9
    }
    A = 0
    B = 0
    tp = (tau1*tau2)/(tau2 - tau1) * log(tau2/tau1)
    factor = 1/(exp(-tp/tau2) - exp(-tp/tau1))
}

BREAKPOINT {
    SOLVE state METHOD cnexp
    g = B - A
    i = g*(v - e)
}

DERIVATIVE state {
    A' = -A/tau1
    B' = -B/tau2
}

NET_RECEIVE(weight (uS), U, tau_rec (ms), tau_fac (ms), u, x, tlast (ms)) {
    LOCAL d, ux
    INITIAL {
        if (U == 0) {
            U = 1
        }
        u = 0
        x = 1
        tlast = -1e9
    }
    d = t - tlast
    if (tau_fac > 0) {
        u = u*exp(-d/tau_fac)
    } else {
        u = 0
    }
    u = u + U*(1 - u)
    if (tau_rec > 0) {
        x = 1 - (1 - x)*exp(-d/tau_rec)
    } else {
        x = 1
    }
    ux = u*x
    x = x - ux
    tlast = t
    A = A + weight*ux*factor
    B = B + weight*ux*factor
}
