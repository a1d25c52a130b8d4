"""Service settings, read once from the environment (and an optional .env file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qs, urlsplit

from limits import parse_many
from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MIN_ADMIN_TOKEN = 16
MIN_API_KEY = 16
# What an API key may do: `predict` (the predict routes and /model-info),
# `feedback` (POST /feedback) and `review` (the /review page's items and labels).
ROLES = frozenset({"predict", "feedback", "review"})
DEFAULT_ROLES = frozenset({"predict"})  # a key written without roles, as before
DEFAULT_DATABASE = Path("data") / "feedback" / "feedback.db"
DATABASE_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+pg8000://")
SSL_MODES = ("disable", "require", "verify-ca", "verify-full")  # what pg8000 can do


def parse_key_entry(entry: str, index: int) -> tuple[str, frozenset[str]]:
    """``KEY`` or ``KEY:role+role``: the key and its roles, checked.

    A key written without roles keeps what keys did before roles existed:
    prediction. Every key is at least MIN_API_KEY characters.
    """
    key, sep, role_text = entry.rpartition(":")
    if not sep:
        key, roles = entry, DEFAULT_ROLES
    else:
        roles = frozenset(role.strip() for role in role_text.split("+"))
        unknown = sorted(roles - ROLES)
        if unknown or not role_text.strip():
            msg = (
                f"API key {index + 1} has unknown roles {unknown or [role_text]}; "
                f"write KEY or KEY:role+role with roles from {sorted(ROLES)}, "
                "e.g. KEY:predict+feedback"
            )
            raise ValueError(msg)
    if len(key) < MIN_API_KEY:
        msg = (
            f"API key {index + 1} has {len(key)} characters, fewer than "
            f"{MIN_API_KEY}; use random keys, e.g. `openssl rand -hex 32`"
        )
        raise ValueError(msg)
    return key, roles


def _secret_file(setting: str, path: Path) -> str:
    """A one-value secret mounted as a file (a Kubernetes Secret), stripped."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        msg = (
            f"{setting} {path} cannot be read ({exc}); fix the Secret's mount or "
            f"unset {setting}"
        )
        raise ValueError(msg) from exc


def _keys_file_entries(path: Path) -> list[str]:
    """The entries of API_KEYS_FILE (comma or newline separated); never none."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = (
            f"API_KEYS_FILE {path} cannot be read ({exc}); "
            "mount the Secret there or unset API_KEYS_FILE"
        )
        raise ValueError(msg) from exc
    entries = [entry.strip() for entry in text.replace(",", "\n").splitlines()]
    entries = [entry for entry in entries if entry]
    if not entries:
        msg = (
            f"API_KEYS_FILE {path} holds no keys, which would turn "
            "authentication off; put the keys in the Secret or unset API_KEYS_FILE"
        )
        raise ValueError(msg)
    return entries


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
        description="Comma-separated keys, each KEY or KEY:role+role (roles predict, "
        "feedback, review; none written = predict); when set, endpoints need "
        "X-API-Key with their role.",
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
        description="Uploads of at most 64 KiB and this many pixels are decoded on "
        "the event loop; the rest in a child process within DECODE_CPU_SECONDS.",
    )
    decode_cpu_seconds: int = Field(
        default=2,
        ge=1,
        le=60,
        description="CPU seconds an image above the inline size may take to decode, "
        "in a child process stopped at this budget (422 above it).",
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

    drift_window: int = Field(
        default=1000,
        ge=200,
        le=100_000,
        description="Recent predictions over which drift scores and review shares "
        "are computed; they are exported once the window is full. An unshifted "
        "window scores a PSI of about (buckets - 1) / window by chance alone.",
    )

    # Quality-assurance review thresholds.
    review_auto_approve: float = Field(default=0.95, gt=0, le=1)
    review_secondary: float = Field(default=0.80, gt=0, le=1)

    # Logging.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # The feedback store.
    database_url: str = Field(
        default="",
        repr=False,  # it may hold a password
        description="SQLAlchemy URL of the feedback store (sqlite:///path or "
        "postgresql://user:password@host/db?sslmode=require); unset = the SQLite file "
        "data/feedback/feedback.db under PROJECT_DIR; 'none' = no store.",
    )
    database_url_file: Path | None = Field(
        default=None,
        description="File holding DATABASE_URL (a mounted Secret); when the file "
        "exists it wins over DATABASE_URL, an absent file leaves DATABASE_URL.",
    )
    feedback_store_inputs: Literal["review", "all"] = Field(
        default="review",
        description="Store the 28x28 model input of review-routed predictions only, "
        "or of all of them.",
    )
    feedback_retention_days: float = Field(
        default=90, gt=0, description="Days a prediction record is kept."
    )
    feedback_queue_size: int = Field(
        default=10_000,
        ge=1,
        description="Records waiting to be written, at most; beyond that (store "
        "down) new records are not queued and are counted as lost.",
    )
    feedback_flush_seconds: float = Field(
        default=0.5, gt=0, le=60, description="Write the waiting records this often."
    )
    feedback_purge_seconds: float = Field(
        default=3600, gt=0, description="Delete expired records this often."
    )

    _key_roles: dict[str, frozenset[str]] = PrivateAttr(default_factory=dict)

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

    @model_validator(mode="after")
    def _collect_keys(self) -> Settings:
        """Add the keys of API_KEYS_FILE, split off each key's roles, check lengths.

        A missing or empty file fails at start, loudly.
        """
        entries = list(self.api_keys)
        if self.api_keys_file is not None:
            entries += _keys_file_entries(self.api_keys_file)
        roles = dict(
            parse_key_entry(entry, index) for index, entry in enumerate(entries)
        )
        object.__setattr__(self, "api_keys", list(roles))
        self._key_roles = roles
        return self

    @property
    def store_url(self) -> str | None:
        """The feedback store's SQLAlchemy URL, or None when it is off."""
        url = self.database_url.strip()
        if url.lower() == "none":
            return None
        if not url:
            return f"sqlite:///{(self.project_dir / DEFAULT_DATABASE).resolve()}"
        return url

    @property
    def key_roles(self) -> dict[str, frozenset[str]]:
        """The roles of each API key (keys without roles: ``predict``)."""
        return self._key_roles

    @model_validator(mode="after")
    def _read_admin_token(self) -> Settings:
        """Take ADMIN_TOKEN from ADMIN_TOKEN_FILE when that file exists, then check it.

        An absent file leaves the admin endpoints off (they answer 403 and say
        why): a Kubernetes Secret mounted as optional may not exist.
        """
        path = self.admin_token_file
        if self.admin_token is None and path is not None and path.exists():
            text = _secret_file("ADMIN_TOKEN_FILE", path)
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

    @model_validator(mode="after")
    def _read_database_url_file(self) -> Settings:
        """Take DATABASE_URL from DATABASE_URL_FILE when that file exists.

        A Kubernetes Secret mounted as optional may not exist: then the
        image's DATABASE_URL (none) stands.
        """
        path = self.database_url_file
        if path is None or not path.exists():
            return self
        url = _secret_file("DATABASE_URL_FILE", path)
        object.__setattr__(self, "database_url", self._database_scheme(url))
        return self

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        """Only the databases the store is tested with; a typo fails at start."""
        url = value.strip()
        if url and url.lower() != "none" and not url.startswith(DATABASE_SCHEMES):
            scheme = url.split("://", 1)[0] if "://" in url else url[:20]
            msg = (
                f"DATABASE_URL has the scheme {scheme!r}, which the feedback store "
                "does not support; use sqlite:///path/to/file.db or "
                "postgresql://user:password@host:5432/db, or 'none' for no store"
            )
            raise ValueError(msg)
        modes = parse_qs(urlsplit(url).query).get("sslmode", [])
        unknown = [mode for mode in modes if mode not in SSL_MODES]
        if unknown:
            msg = (
                f"DATABASE_URL has sslmode={unknown[0]!r}; use one of "
                f"{', '.join(SSL_MODES)}, e.g. sslmode=verify-full for a managed "
                "PostgreSQL"
            )
            raise ValueError(msg)
        return url

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
