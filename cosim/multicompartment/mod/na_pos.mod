COMMENT
Fast sodium current of cortical neurons (Traub & Miles 1991), as in
Pospischil M, Toledo-Rodriguez M, Monier C, Piwkowska Z, Bal T, Fregnac Y, Markram H,
Destexhe A (2008) Minimal Hodgkin-Huxley type models for different classes of cortical
and thalamic neurons. Biol Cybern 99:427-441, eqs. (2)-(3):

    ina = gnabar * m^3 * h * (v - ena)
    alpha_m = -0.32 (v - vt - 13) / (exp(-(v - vt - 13)/4) - 1)
    beta_m  =  0.28 (v - vt - 40) / (exp((v - vt - 40)/5) - 1)
    alpha_h =  0.128 exp(-(v - vt - 17)/18)
    beta_h  =  4 / (1 + exp(-(v - vt - 40)/5))

Units: v, vt, ena mV; rates 1/ms; gnabar S/cm2; ina mA/cm2.  The paper's rates hold at
36 degC; cosim adds a temperature factor q10^((celsius - 36)/10) with q10 = 3 (not in the
paper; 1 at 36 degC).
ENDCOMMENT

NEURON {
    SUFFIX na_pos
    USEION na READ ena WRITE ina
    RANGE gnabar, vt, ina
    GLOBAL q10
}

UNITS {
    (mV) = (millivolt)
    (mA) = (milliamp)
    (S) = (siemens)
}

PARAMETER {
    gnabar = 0.05 (S/cm2) <0, 1e9>
    vt = -58 (mV)
    q10 = 3
}

ASSIGNED {
    v (mV)
    ena (mV)
    ina (mA/cm2)
    celsius (degC)
    minf
    hinf
    mtau (ms)
    htau (ms)
}

STATE { m h }

BREAKPOINT {
    SOLVE states METHOD cnexp
    ina = gnabar * m * m * m * h * (v - ena)
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
    LOCAL am, bm, ah, bh, tadj
    TABLE minf, hinf, mtau, htau DEPEND vt, celsius FROM -100 TO 100 WITH 200
    tadj = q10 ^ ((celsius - 36) / 10)
    am = 0.32 * vtrap(-(v - vt - 13), 4)
    bm = 0.28 * vtrap(v - vt - 40, 5)
    ah = 0.128 * exp(-(v - vt - 17) / 18)
    bh = 4 / (1 + exp(-(v - vt - 40) / 5))
    minf = am / (am + bm)
    mtau = 1 / ((am + bm) * tadj)
    hinf = ah / (ah + bh)
    htau = 1 / ((ah + bh) * tadj)
}

FUNCTION vtrap(x, y) {
    : x / (exp(x/y) - 1), continuous at x = 0
    if (fabs(x / y) < 1e-6) {
        vtrap = y * (1 - x / y / 2)
    } else {
        vtrap = x / (exp(x / y) - 1)
    }
}
