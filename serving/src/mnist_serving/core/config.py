"""Service settings, read once from the environment (and an optional .env file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from limits import parse_many
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MIN_ADMIN_TOKEN = 16
MIN_API_KEY = 16


class Settings(BaseSettings):
    """Every knob of the service; each field is an upper-case environment variable."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    # Where the model comes from.
    model_uri: str | None = Field(
        default=None,
        description="Local path or abfs:// URL of the .tflite file or its versioned "
        "folder; overrides the Kedro catalog.",
    )
    project_dir: Path = Field(
        default_factory=Path.cwd,
        description="Kedro project whose conf/ names the exported model.",
    )
    kedro_env: str = Field(
        default="local", description="Kedro environment layered over conf/base."
    )
    azure_storage_account_name: str | None = Field(
        default=None, description="Storage account for abfs:// URLs without one."
    )

    # Security and limits.
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        repr=False,
        description="Comma-separated keys; when set, predict endpoints need X-API-Key.",
    )
    api_keys_file: Path | None = Field(
        default=None,
        description="File of keys (comma or newline separated), e.g. a mounted "
        "Kubernetes Secret; added to API_KEYS.",
    )
    rate_limit: str = Field(
        default="600/minute",
        description="Limit per API key, in the `limits` notation (e.g. '600/minute' "
        "or '20/second;600/minute'); empty = off. Batch images count one each.",
    )
    rate_limit_anonymous: str = Field(
        default="",
        description="Limit per client address for callers without an API key; empty "
        "(default) = off. Behind a proxy the address is the one uvicorn derives from "
        "X-Forwarded-For of FORWARDED_ALLOW_IPS.",
    )
    auth_failure_limit: str = Field(
        default="10/minute",
        description="Failed API-key checks allowed per client address before 429.",
    )
    rate_limit_storage_uri: str = Field(
        default="memory://",
        description="Where limits are counted: memory:// (one process) or "
        "redis://host:6379 (shared by every replica).",
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Proxies whose X-Forwarded-For/-Proto uvicorn trusts "
        "(comma-separated addresses or CIDRs, '*' for any).",
    )
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_json_bytes: int = Field(
        default=512 * 1024,
        ge=1024,
        description="Body limit of the JSON endpoints: a canvas drawing is tens of "
        "KB, and the JSON is parsed on the event loop; send big images to /predict.",
    )
    max_base64_chars: int = Field(default=500_000, ge=100)
    max_image_pixels: int = Field(default=16_777_216, ge=784)
    max_batch_images: int = Field(default=256, ge=1)
    max_batch_pixels: int = Field(
        default=16_777_216,
        ge=784,
        description="Pixels the images of one batch may declare in all.",
    )
    max_number_digits: int = Field(
        default=20,
        ge=1,
        le=64,
        description="Digits /predict-number reads in one image; more is a 422.",
    )
    max_concurrency: int = Field(
        default=256, ge=1, description="Predict requests in flight before 503."
    )
    batch_threads: int = Field(
        default=1,
        ge=1,
        le=16,
        description="LiteRT threads for batch inference (off the event loop).",
    )
    inline_pixels: int = Field(
        default=262_144,
        ge=784,
        description="Images up to this many pixels are preprocessed on the event "
        "loop; bigger ones in a worker thread.",
    )

    # Operations: graceful shutdown and model reloads.
    shutdown_delay_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="After SIGTERM, seconds /health/ready answers 503 while requests "
        "are still served (load balancers drop the pod), before uvicorn's graceful "
        "stop.",
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of POST /admin/reload; unset = admin endpoints off.",
    )
    admin_token_file: Path | None = Field(
        default=None,
        description="File holding ADMIN_TOKEN (a mounted Secret); absent file = off.",
    )
    model_poll_seconds: float = Field(
        default=0,
        ge=0,
        description="Re-locate the model this often and load a new version; 0 = off.",
    )

    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Serve /metrics on this port (prometheus-client's own server) "
        "instead of the API port; unset = on the API port.",
    )

    # Quality-assurance review thresholds.
    review_auto_approve: float = Field(default=0.95, gt=0, le=1)
    review_secondary: float = Field(default=0.80, gt=0, le=1)

    # Logging.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        """Accept "k1,k2" as well as a list; a value that holds no key is an error.

        `API_KEYS=" , "` must not silently turn authentication off.
        """
        if isinstance(value, str):
            keys = [key.strip() for key in value.split(",") if key.strip()]
            if value.strip() and not keys:
                msg = (
                    f"API_KEYS={value!r} holds no key, which would turn "
                    "authentication off; set real keys or unset API_KEYS"
                )
                raise ValueError(msg)
            return keys
        return value

    @field_validator("api_keys")
    @classmethod
    def _long_keys(cls, keys: list[str]) -> list[str]:
        """Every key is at least MIN_API_KEY characters: short keys can be guessed."""
        for index, key in enumerate(keys):
            if len(key) < MIN_API_KEY:
                msg = (
                    f"API key {index + 1} has {len(key)} characters, fewer than "
                    f"{MIN_API_KEY}; use random keys, e.g. `openssl rand -hex 32`"
                )
                raise ValueError(msg)
        return keys

    @model_validator(mode="after")
    def _read_keys_file(self) -> Settings:
        """Add the keys of API_KEYS_FILE; a missing file fails at start, loudly."""
        if self.api_keys_file is None:
            return self
        try:
            text = self.api_keys_file.read_text(encoding="utf-8")
        except OSError as exc:
            msg = (
                f"API_KEYS_FILE {self.api_keys_file} cannot be read ({exc}); "
                "mount the Secret there or unset API_KEYS_FILE"
            )
            raise ValueError(msg) from exc
        keys = [key.strip() for key in text.replace(",", "\n").splitlines()]
        keys = [key for key in keys if key]
        if not keys:
            msg = (
                f"API_KEYS_FILE {self.api_keys_file} holds no keys, which would turn "
                "authentication off; put the keys in the Secret or unset API_KEYS_FILE"
            )
            raise ValueError(msg)
        self._long_keys(keys)
        object.__setattr__(self, "api_keys", [*self.api_keys, *keys])
        return self

    @model_validator(mode="after")
    def _read_admin_token(self) -> Settings:
        """Take ADMIN_TOKEN from ADMIN_TOKEN_FILE when that file exists, then check it.

        An absent file leaves the admin endpoints off (they answer 403 and say
        why): a Kubernetes Secret mounted as optional may not exist.
        """
        path = self.admin_token_file
        if self.admin_token is None and path is not None and path.exists():
            try:
                text = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                msg = (
                    f"ADMIN_TOKEN_FILE {path} cannot be read ({exc}); fix the "
                    "Secret's mount or unset ADMIN_TOKEN_FILE"
                )
                raise ValueError(msg) from exc
            object.__setattr__(self, "admin_token", SecretStr(text))
        if self.admin_token is None:
            return self
        token = self.admin_token.get_secret_value()
        if len(token) < MIN_ADMIN_TOKEN:
            msg = (
                f"ADMIN_TOKEN has {len(token)} characters, fewer than "
                f"{MIN_ADMIN_TOKEN}; use a random one, e.g. `openssl rand -hex 32`"
            )
            raise ValueError(msg)
        if token in self.api_keys:
            msg = (
                "ADMIN_TOKEN equals one of the API keys; use a separate secret so "
                "that a prediction client cannot reload models"
            )
            raise ValueError(msg)
        return self

    @field_validator("rate_limit", "rate_limit_anonymous", "auth_failure_limit")
    @classmethod
    def _parse_limit(cls, value: str) -> str:
        """Fail at start on a limit the `limits` library cannot parse."""
        if value.strip():
            try:
                parse_many(value)
            except ValueError as exc:
                msg = (
                    f"rate limit {value!r} cannot be parsed ({exc}); write it like "
                    "'600/minute' or '10/second;600/minute', or leave it empty"
                )
                raise ValueError(msg) from exc
        return value.strip()

    @field_validator("rate_limit_storage_uri")
    @classmethod
    def _storage_scheme(cls, value: str) -> str:
        """Only the storages the service is tested with."""
        if not value.startswith(("memory://", "redis://", "rediss://")):
            msg = (
                f"RATE_LIMIT_STORAGE_URI {value!r} is not supported; use memory:// "
                "or redis://host:6379"
            )
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _check_thresholds(self) -> Settings:
        """The secondary threshold must sit below the auto-approve one."""
        if self.review_secondary >= self.review_auto_approve:
            msg = (
                f"REVIEW_SECONDARY={self.review_secondary} must be below "
                f"REVIEW_AUTO_APPROVE={self.review_auto_approve}"
            )
            raise ValueError(msg)
        return self


@lru_cache
def get_settings() -> Settings:
    """Settings built once per process."""
    return Settings()
