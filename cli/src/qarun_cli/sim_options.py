"""`--sim-limits`: the provider limits the local runner's simulator models.

"capacity=200,mode=slow,rpm=3000,tpm=2000000" -> the simulator's --capacity,
--capacity-mode, --rpm-limit and --tpm-limit (see `qarun_simulator.provider_limits`).
"""

from __future__ import annotations

from qarun_cli.errors import CLIError

SIM_LIMITS = {
    "capacity": "--capacity",
    "mode": "--capacity-mode",
    "rpm": "--rpm-limit",
    "tpm": "--tpm-limit",
}
CAPACITY_MODES = ("503", "429", "slow")


def parse_limits(text: str) -> dict[str, str]:
    """Checked NAME=VALUE pairs, by the simulator flag each one sets."""
    flags: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or name not in SIM_LIMITS:
            raise CLIError(
                f"--sim-limits: {part!r} is not NAME=VALUE with NAME one of "
                f"{', '.join(SIM_LIMITS)}",
                code=2,
            )
        if name == "mode":
            if value not in CAPACITY_MODES:
                raise CLIError(
                    f"--sim-limits: mode must be one of {', '.join(CAPACITY_MODES)}, got {value!r}",
                    code=2,
                )
        elif not value.isdigit():
            raise CLIError(f"--sim-limits: {name} must be a whole number >= 0, got {value!r}", 2)
        flags[SIM_LIMITS[name]] = value
    return flags
