COMMENT
Small-conductance calcium-activated potassium current (SK): Koehler M, Hirschberg B,
Bond CT, Kinzie JM, Marrion NV, Maylie J, Adelman JP (1996) Small-conductance,
calcium-activated potassium channels from mammalian brain. Science 273:1709-1714; in the
form of Hay et al. (2011) PLoS Comput Biol 7:e1002107:

    ik = gbar * z * (v - ek)
    z_inf = 1 / (1 + (0.00043 / cai)^4.8),  tau_z = 1 ms

Units: v, ek mV; cai mM; gbar S/cm2; ik mA/cm2.  cai below 1e-7 mM is raised by 1e-7 mM
(as in the source, to keep z_inf defined).
ENDCOMMENT

NEURON {
    SUFFIX sk
    USEION k READ ek WRITE ik
    USEION ca READ cai
    RANGE gbar, ik
}

UNITS {
    (mV) = (millivolt)
    (mA) = (milliamp)
    (S) = (siemens)
    (mM) = (milli/liter)
}

PARAMETER {
    gbar = 1e-5 (S/cm2) <0, 1e9>
    ztau = 1 (ms)
}

ASSIGNED {
    v (mV)
    ek (mV)
    ik (mA/cm2)
    cai (mM)
    zinf
}

STATE { z }

BREAKPOINT {
    SOLVE states METHOD cnexp
    ik = gbar * z * (v - ek)
}

INITIAL {
    rates(cai)
    z = zinf
}

DERIVATIVE states {
    rates(cai)
    z' = (zinf - z) / ztau
}

PROCEDURE rates(ca (mM)) {
    LOCAL c
    c = ca
    if (c < 1e-7) {
        c = c + 1e-7
    }
    zinf = 1 / (1 + pow(0.00043 / c, 4.8))
}
