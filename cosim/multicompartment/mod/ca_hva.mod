COMMENT
High-voltage-activated calcium current: Reuveni I, Friedman A, Amitai Y, Gutnick MJ
(1993) Stepwise repolarization from Ca2+ plateaus in neocortical pyramidal cells.
J Neurosci 13:4609-4621; in the form of Hay et al. (2011) PLoS Comput Biol 7:e1002107:

    ica = gbar * m^2 * h * (v - eca)
    alpha_m = 0.055 (-27 - v) / (exp((-27 - v)/3.8) - 1)
    beta_m  = 0.94 exp((-75 - v)/17)
    alpha_h = 0.000457 exp((-13 - v)/50)
    beta_h  = 0.0065 / (exp((-v - 15)/28) + 1)

Units: v, eca mV; rates 1/ms; gbar S/cm2; ica mA/cm2.  No temperature dependence (as in
the source).  eca follows cai (Nernst) where a calcium pool writes cai.
ENDCOMMENT

NEURON {
    SUFFIX ca_hva
    USEION ca READ eca WRITE ica
    RANGE gbar, ica
}

UNITS {
    (mV) = (millivolt)
    (mA) = (milliamp)
    (S) = (siemens)
}

PARAMETER {
    gbar = 1e-5 (S/cm2) <0, 1e9>
}

ASSIGNED {
    v (mV)
    eca (mV)
    ica (mA/cm2)
    minf
    hinf
    mtau (ms)
    htau (ms)
}

STATE { m h }

BREAKPOINT {
    SOLVE states METHOD cnexp
    ica = gbar * m * m * h * (v - eca)
}

INITIAL {
    rates(v)
    m = minf
    h = hinf
}

DERIVATIVE states {
    rates(v)
    m' = (minf - m) / mtau
    h' = (hinf - h) / htau
}

PROCEDURE rates(v (mV)) {
    LOCAL am, bm, ah, bh, x
    x = -27 - v
    if (fabs(x / 3.8) < 1e-6) {
        am = 0.055 * 3.8 * (1 - x / 3.8 / 2)
    } else {
        am = 0.055 * x / (exp(x / 3.8) - 1)
    }
    bm = 0.94 * exp((-75 - v) / 17)
    ah = 0.000457 * exp((-13 - v) / 50)
    bh = 0.0065 / (exp((-v - 15) / 28) + 1)
    minf = am / (am + bm)
    mtau = 1 / (am + bm)
    hinf = ah / (ah + bh)
    htau = 1 / (ah + bh)
}
