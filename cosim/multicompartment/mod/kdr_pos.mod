COMMENT
Delayed-rectifier potassium current of cortical neurons (Traub & Miles 1991), as in
Pospischil et al. (2008) Biol Cybern 99:427-441, eq. (4):

    ik = gkbar * n^4 * (v - ek)
    alpha_n = -0.032 (v - vt - 15) / (exp(-(v - vt - 15)/5) - 1)
    beta_n  =  0.5 exp(-(v - vt - 10)/40)

Units: v, vt, ek mV; rates 1/ms; gkbar S/cm2; ik mA/cm2.  Rates at 36 degC; cosim adds
a temperature factor q10^((celsius - 36)/10), q10 = 3 (not in the paper).
ENDCOMMENT

NEURON {
    SUFFIX kdr_pos
    USEION k READ ek WRITE ik
    RANGE gkbar, vt, ik
    GLOBAL q10
}

UNITS {
    (mV) = (millivolt)
    (mA) = (milliamp)
    (S) = (siemens)
}

PARAMETER {
    gkbar = 0.005 (S/cm2) <0, 1e9>
    vt = -58 (mV)
    q10 = 3
}

ASSIGNED {
    v (mV)
    ek (mV)
    ik (mA/cm2)
    celsius (degC)
    ninf
    ntau (ms)
}

STATE { n }

BREAKPOINT {
    SOLVE states METHOD cnexp
    ik = gkbar * n * n * n * n * (v - ek)
}

INITIAL {
    rates(v)
    n = ninf
}

DERIVATIVE states {
    rates(v)
    n' = (ninf - n) / ntau
}

PROCEDURE rates(v (mV)) {
    LOCAL an, bn, x
    x = -(v - vt - 15)
    if (fabs(x / 5) < 1e-6) {
        an = 0.032 * 5 * (1 - x / 10)
    } else {
        an = 0.032 * x / (exp(x / 5) - 1)
    }
    bn = 0.5 * exp(-(v - vt - 10) / 40)
    ninf = an / (an + bn)
    ntau = 1 / ((an + bn) * q10 ^ ((celsius - 36) / 10))
}
