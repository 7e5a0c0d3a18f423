"""What the `qarun` command reads from the user's environment, in one typed place.

The same style as every QARun process (`QARUN_` prefix, `__` nesting): the LLM key a
local run hands to the processes that need it (`QARUN_LLM__API_KEY`, or the usual
`OPENAI_API_KEY`), an LLM endpoint in place of the spec's (`QARUN_LLM__BASE_URL`) and
where local runs keep their state (`QARUN_STATE_DIR`, else `$XDG_STATE_HOME/qarun`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from qarun_core.env_contract import DELIMITER, PREFIX


class UserLLM(BaseModel):
    base_url: str = ""
    api_key: SecretStr = SecretStr("")


class CLISettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_nested_delimiter=DELIMITER, extra="ignore"
    )

    llm: UserLLM = UserLLM()
    state_dir: str = ""
    openai_api_key: SecretStr = Field(default=SecretStr(""), validation_alias="OPENAI_API_KEY")
    xdg_state_home: str = Field(default="", validation_alias="XDG_STATE_HOME")

    def llm_api_key(self) -> str:
        return self.llm.api_key.get_secret_value() or self.openai_api_key.get_secret_value()

    def state_root(self) -> Path:
        if self.state_dir:
            return Path(self.state_dir)
        return Path(self.xdg_state_home or Path.home() / ".local" / "state") / "qarun"
