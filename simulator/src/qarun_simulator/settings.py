"""The simulator's settings from the environment (QARUN_SIMULATOR__ prefix), for what
must not travel on a command line: the API key clients must send."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class SimulatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QARUN_SIMULATOR__", extra="ignore")

    # The key clients must send as a bearer token (QARUN_SIMULATOR__API_KEY); empty:
    # none is checked.
    api_key: SecretStr = SecretStr("")
