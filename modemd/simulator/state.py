"""The volatile settings of a simulated modem: what a reset or a power cycle puts back."""

from __future__ import annotations

from dataclasses import dataclass, field

from modemd.simulator.profiles import SimProfile

PIN_READY = "READY"
PIN_SIM_PIN = "SIM PIN"
PIN_SIM_PUK = "SIM PUK"


@dataclass(slots=True)
class ModemState:
    echo: bool = True
    cmee: int = 0
    cmgf: int = 0
    csdh: int = 0
    cscs: str = "IRA"
    cnmi: list[int] = field(default_factory=lambda: [0, 0, 0, 0, 0])
    cpms: list[str] = field(default_factory=lambda: ["SM", "SM", "SM"])
    creg_n: int = 0
    cgreg_n: int = 0
    cereg_n: int = 0
    cfun: int = 1
    curc: int = 1
    csms: int = 0
    csca: str = ""
    tosca: int = 145
    ipr: int = 115200
    pin_state: str = PIN_READY
    pin_attempts: int = 3

    @classmethod
    def power_on(cls, profile: SimProfile, *, echo: bool, pin_locked: bool) -> ModemState:
        return cls(
            echo=echo,
            cmee=profile.default_cmee,
            cscs=profile.default_cscs,
            cnmi=list(profile.default_cnmi),
            cpms=list(profile.default_storage),
            csca=profile.smsc,
            pin_state=PIN_SIM_PIN if pin_locked else PIN_READY,
        )

    def restore_user_settings(self, profile: SimProfile, *, echo: bool) -> None:
        """ATZ / AT&F: the command settings go back; SIM state and radio stay."""
        fresh = ModemState.power_on(profile, echo=echo, pin_locked=False)
        for name in ("echo", "cmee", "cmgf", "csdh", "cscs", "cnmi", "creg_n", "cgreg_n",
                     "cereg_n", "curc"):
            setattr(self, name, getattr(fresh, name))
