"""Facade settings, read from environment variables with the prefix FPS_."""

from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The H&M price schema, the one the bundled demo models are trained on. It is the
# only schema with a product_group field, so the classifier's output can feed it.
HM_PRICE_FIELDS: tuple[str, ...] = (
    "name",
    "description",
    "product_type",
    "product_group",
    "colour",
    "department",
    "index_name",
    "garment_group",
    "graphical_appearance",
)

# The classifier's labels: H&M's nine product groups with 1,000 or more articles, as
# every model trained by this project's CLI outputs them. The facade keeps its own
# copy because the serving image carries no training code.
HM_PRODUCT_GROUPS: tuple[str, ...] = (
    "Garment Upper body",
    "Garment Lower body",
    "Garment Full body",
    "Accessories",
    "Underwear",
    "Shoes",
    "Swimwear",
    "Socks & Tights",
    "Nightwear",
)

# 10 MiB, the same value as TorchServe's max_request_size in the generated config.properties.
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024


class Settings(BaseSettings):
    """Facade configuration. Each field is read from FPS_<FIELD NAME IN UPPER CASE>."""

    # hide_input_in_errors keeps a rejected TorchServe key out of the error message and the logs.
    model_config = SettingsConfigDict(env_prefix="FPS_", extra="ignore", hide_input_in_errors=True)

    host: str = Field("127.0.0.1", description="Address the facade listens on.")
    port: int = Field(8000, ge=0, le=65535, description="Port the facade listens on (0 picks a free port).")

    torchserve_inference_url: str = Field(
        "http://127.0.0.1:8080", description="Base URL of TorchServe's inference API."
    )
    torchserve_management_url: str = Field(
        "http://127.0.0.1:8081", description="Base URL of TorchServe's management API, used by /readyz."
    )
    torchserve_inference_key: SecretStr | None = Field(
        None, description="TorchServe inference key (key_file.json); unset when token authorization is off."
    )
    torchserve_management_key: SecretStr | None = Field(
        None, description="TorchServe management key, used only to describe models for /readyz."
    )
    classifier_model: str = Field("fashion_classifier", description="TorchServe name of the image classifier.")
    price_model: str = Field("price_regressor", description="TorchServe name of the price model.")
    price_fields: Annotated[tuple[str, ...], NoDecode] = Field(
        HM_PRICE_FIELDS,
        description=(
            "Comma-separated input fields of the served price model (its manifest's fields). "
            "The facade sends only these fields, because the price handler rejects unknown ones."
        ),
    )

    product_groups: Annotated[tuple[str, ...], NoDecode] = Field(
        HM_PRODUCT_GROUPS,
        description=(
            "Comma-separated product groups a request may name in product_group (the classifier's labels). "
            "Any other value gets 422, because a misspelt group would silently change the price."
        ),
    )

    connect_timeout_s: float = Field(1.0, gt=0, description="Timeout in seconds for opening a connection to TorchServe.")
    read_timeout_s: float = Field(
        30.0,
        gt=0,
        description=(
            "Timeout in seconds for a TorchServe response. A whole call, sending the request included, "
            "gets FPS_CONNECT_TIMEOUT_S + FPS_READ_TIMEOUT_S."
        ),
    )
    max_connections: int = Field(
        128,
        ge=1,
        description=(
            "Maximum number of connections to TorchServe. A call that finds all of them busy for "
            "FPS_CONNECT_TIMEOUT_S gets 503. /v1/predict with a product_group uses two at once, so the "
            "default is twice FPS_MAX_CONCURRENT_REQUESTS."
        ),
    )
    retry_after_s: int = Field(1, ge=0, description="Value of the Retry-After header on 503 responses, in seconds.")

    max_upload_bytes: int = Field(
        DEFAULT_MAX_UPLOAD_BYTES,
        ge=1024,
        description=(
            "Maximum request body in bytes. Keep it at or below TorchServe's max_request_size, "
            "so every accepted image also fits TorchServe's limit."
        ),
    )
    max_concurrent_requests: int = Field(
        64,
        ge=1,
        description=(
            "Maximum number of /v1/ requests in flight; one more gets an immediate 503 with Retry-After "
            "instead of waiting in a queue it would time out in."
        ),
    )
    max_price_items: int = Field(64, ge=1, description="Maximum number of items in one /v1/price request.")

    log_level: str = Field("INFO", description="Log level of the facade's loggers (DEBUG, INFO, WARNING, ...).")
    log_format: Literal["text", "json"] = Field("text", description="Log line format: text or json.")

    @field_validator("price_fields", "product_groups", mode="before")
    @classmethod
    def _split_price_fields(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @field_validator("price_fields")
    @classmethod
    def _require_price_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("FPS_PRICE_FIELDS is empty; set it to the price model's field names, e.g. 'name,description'")
        return value

    @field_validator("torchserve_inference_key", "torchserve_management_key", mode="before")
    @classmethod
    def _clean_key(cls, value: object, info: ValidationInfo) -> object:
        """Strip whitespace around a key and reject one that cannot be sent in an HTTP header."""
        if not isinstance(value, str):
            return value

        # A key read from a secret file often ends with a newline.
        key = value.strip()
        # An empty FPS_..._KEY means "no key" (token authorization off), not an empty Bearer token.
        if not key:
            return None
        if not key.isprintable():
            variable = f"FPS_{info.field_name.upper()}"
            raise ValueError(
                f"{variable} contains a control character, so it cannot be sent in the Authorization header. "
                "Set it to the key in TorchServe's key_file.json"
            )
        return key

    @field_validator("torchserve_inference_url", "torchserve_management_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")
