COMMENT
Slow non-inactivating potassium current (M-current), Yamada, Koch & Adams (1989), as in
Pospischil et al. (2008) Biol Cybern 99:427-441, eq. (5):

    ik = gkbar * p * (v - ek)
    p_inf = 1 / (1 + exp(-(v + 35)/10))
    tau_p = tau_max / (3.3 exp((v + 35)/20) + exp(-(v + 35)/20))

Units: v, ek mV; tau ms; gkbar S/cm2; ik mA/cm2.  tau_p is divided by the temperature
factor 2.3^((celsius - 36)/10), as in the authors' model files (1 at 36 degC).
ENDCOMMENT

NEURON {
    SUFFIX im_pos
    USEION k READ ek WRITE ik
    RANGE gkbar, taumax, ik
}

UNITS {
    (mV) = (millivolt)
    (mA) = (milliamp)
    (S) = (siemens)
}

PARAMETER {
    gkbar = 7e-5 (S/cm2) <0, 1e9>
    taumax = 1000 (ms)
}

ASSIGNED {
    v (mV)
    ek (mV)
    ik (mA/cm2)
    celsius (degC)
    pinf
    ptau (ms)
}

STATE { p }

BREAKPOINT {
    SOLVE states METHOD cnexp
    ik = gkbar * p * (v - ek)
}

INITIAL {
    rates(v)
    p = pinf
}

DERIVATIVE states {
    rates(v)
    p' = (pinf - p) / ptau
}

PROCEDURE rates(v (mV)) {
    LOCAL tadj
    tadj = 2.3 ^ ((celsius - 36) / 10)
    pinf = 1 / (1 + exp(-(v + 35) / 10))
    ptau = taumax / (3.3 * exp((v + 35) / 20) + exp(-(v + 35) / 20)) / tadj
}
