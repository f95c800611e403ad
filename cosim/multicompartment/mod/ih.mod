COMMENT
Hyperpolarisation-activated cation current (Ih, HCN) of layer-5 pyramidal neurons:
Kole MHP, Hallermann S, Stuart GJ (2006) Single Ih channels in pyramidal neuron
dendrites: properties, distribution, and impact on action potential output.
J Neurosci 26:1677-1687; with the parameters of Hay E, Hill S, Schuermann F, Markram H,
Segev I (2011) PLoS Comput Biol 7:e1002107:

    ihcn = gbar * m * (v - ehcn),  ehcn = -45 mV
    alpha_m = 0.001 * 6.43 (v + 154.9) / (exp((v + 154.9)/11.9) - 1)
    beta_m  = 0.001 * 193 exp(v / 33.1)

Units: v mV; rates 1/ms; gbar S/cm2; ihcn mA/cm2.  No temperature dependence (as in the
sources).
ENDCOMMENT

NEURON {
    SUFFIX ih
    NONSPECIFIC_CURRENT ihcn
    RANGE gbar, ehcn, ihcn
}

UNITS {
    (mV) = (millivolt)
    (mA) = (milliamp)
    (S) = (siemens)
}

PARAMETER {
    gbar = 1e-5 (S/cm2) <0, 1e9>
    ehcn = -45 (mV)
}

ASSIGNED {
    v (mV)
    ihcn (mA/cm2)
    minf
    mtau (ms)
}

STATE { m }

BREAKPOINT {
    SOLVE states METHOD cnexp
    ihcn = gbar * m * (v - ehcn)
}

INITIAL {
    rates(v)
    m = minf
}

DERIVATIVE states {
    rates(v)
    m' = (minf - m) / mtau
}

PROCEDURE rates(v (mV)) {
    LOCAL a, b, x
    x = v + 154.9
    if (fabs(x / 11.9) < 1e-6) {
        a = 0.001 * 6.43 * 11.9 * (1 - x / 11.9 / 2)
    } else {
        a = 0.001 * 6.43 * x / (exp(x / 11.9) - 1)
    }
    b = 0.001 * 193 * exp(v / 33.1)
    minf = a / (a + b)
    mtau = 1 / (a + b)
}
