COMMENT
Low-voltage-activated (T-type) calcium current: Avery RB, Johnston D (1996) J Neurosci
16:5567-5582 and Randall AD, Tsien RW (1997) Neuropharmacology 36:879-893; in the form
of Hay et al. (2011) PLoS Comput Biol 7:e1002107 (voltage shifted by +10 mV):

    ica = gbar * m^2 * h * (v - eca),  u = v + 10
    m_inf = 1 / (1 + exp(-(u + 30)/6)),    tau_m = (5 + 20 / (1 + exp((u + 25)/5))) / qt
    h_inf = 1 / (1 + exp((u + 80)/6.4)),   tau_h = (20 + 50 / (1 + exp((u + 40)/7))) / qt
    qt = 2.3^((celsius - 21)/10)

Units: v, eca mV; tau ms; gbar S/cm2; ica mA/cm2.
ENDCOMMENT

NEURON {
    SUFFIX ca_lva
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
    celsius (degC)
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
    LOCAL qt, u
    qt = 2.3 ^ ((celsius - 21) / 10)
    u = v + 10
    minf = 1 / (1 + exp(-(u + 30) / 6))
    mtau = (5 + 20 / (1 + exp((u + 25) / 5))) / qt
    hinf = 1 / (1 + exp((u + 80) / 6.4))
    htau = (20 + 50 / (1 + exp((u + 40) / 7))) / qt
}
