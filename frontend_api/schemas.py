"""Pydantic models of every request and response body of the facade."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

# Upper bounds that keep one request small. The price handler enforces its own,
# usually tighter, per-field limits from the model manifest and rejects longer text,
# except the description, which the facade truncates (PRICED_DESCRIPTION_CHARS).
MAX_NAME_CHARS = 500
MAX_TEXT_CHARS = 200_000
MAX_CATEGORY_CHARS = 200

# The description characters the price models read: every price schema written by
# training/price sets the description's max_length to 20,000. A longer description
# is cut to this length, because its tail adds little to TF-IDF features, and the
# response lists the field under `truncated_fields`.
PRICED_DESCRIPTION_CHARS = 20_000


def _category(description: str) -> Any:
    return Field(None, max_length=MAX_CATEGORY_CHARS, description=description)


class ProductText(BaseModel):
    """The text of one product listing, in the canonical field names of the price model schemas.

    Each price model reads a subset of these fields (FPS_PRICE_FIELDS). The facade
    sends only that subset and lists the other fields it received as `ignored_fields`.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(..., min_length=1, max_length=MAX_NAME_CHARS, description="Product name.")
    description: str = Field(..., max_length=MAX_TEXT_CHARS, description="Product description; may be empty.")
    product_group: str | None = _category(
        "H&M product group, e.g. 'Garment Upper body'. When absent, /v1/predict uses the classifier's label."
    )
    brand: str | None = _category("Brand name.")
    colour: str | None = _category("Colour name, e.g. 'Black'.")
    material: str | None = _category("Main material or fabric, e.g. 'Cotton'.")
    product_type: str | None = _category("H&M product type, e.g. 'Trousers'.")
    department: str | None = _category("H&M department name.")
    index_name: str | None = _category("H&M index name, e.g. 'Ladieswear'.")
    garment_group: str | None = _category("H&M garment group, e.g. 'Jersey Basic'.")
    graphical_appearance: str | None = _category("H&M graphical appearance, e.g. 'Solid'.")
    gender: str | None = _category("Catalogue gender, e.g. 'Women'.")
    master_category: str | None = _category("Catalogue master category, e.g. 'Apparel'.")
    sub_category: str | None = _category("Catalogue sub-category, e.g. 'Topwear'.")
    article_type: str | None = _category("Catalogue article type, e.g. 'Tshirts'.")
    season: str | None = _category("Catalogue season, e.g. 'Summer'.")
    usage: str | None = _category("Catalogue usage, e.g. 'Casual'.")
    category: str | None = _category("Mercari category path, e.g. 'Women/Tops & Blouses/Blouse'.")
    condition: str | None = _category("Mercari item condition, '1' (new) to '5'.")
    shipping: str | None = _category("Mercari shipping flag: '1' when the seller pays, '0' otherwise.")


class PredictJsonRequest(ProductText):
    """A /v1/predict request sent as JSON, with the photo as base64."""

    image_base64: str = Field(
        ...,
        min_length=1,
        description="The product photo (JPEG, PNG, WebP, ...) encoded as base64; a data: URL prefix is accepted.",
    )


class ClassifyJsonRequest(BaseModel):
    """A /v1/classify request sent as JSON, with the photo as base64."""

    model_config = ConfigDict(extra="forbid", strict=True)

    image_base64: str = Field(..., min_length=1, description="The product photo encoded as base64.")


def _price_request_kind(value: Any) -> str:
    return "array" if isinstance(value, list) else "object"


# Pydantic tags the error locations with these discriminator names; errors.py drops them.
PRICE_REQUEST_TAGS = ("object", "array")

PriceRequest = Annotated[
    Annotated[ProductText, Tag("object")] | Annotated[list[ProductText], Tag("array")],
    Discriminator(_price_request_kind),
]


class FieldError(BaseModel):
    """One invalid field of a request."""

    field: str = Field(..., description="Path of the field, e.g. 'name' or '[2].description'.")
    message: str


class ErrorResponse(BaseModel):
    """Body of every error response."""

    error: str = Field(..., description="Error kind, e.g. invalid_input, model_unavailable, upstream_timeout.")
    message: str = Field(..., description="What failed and how to fix it.")
    fields: list[FieldError] = Field(default_factory=list, description="The invalid fields, for input errors.")
    request_id: str


class LabelProbability(BaseModel):
    """One class of the classifier's top-k list."""

    label: str
    probability: float


class Category(BaseModel):
    """The classifier's result: the top label, its probability and the top-k list."""

    label: str
    confidence: float = Field(..., description="Probability of `label`, between 0 and 1.")
    top_k: list[LabelProbability]


class Price(BaseModel):
    """A suggested price from the price model."""

    value: float = Field(..., description="Suggested price in `unit`.")
    unit: str | None = Field(None, description="Price unit as stated by the model's training data.")
    currency: str | None = Field(None, description="ISO currency code, or null when the unit is not a currency.")
    model_version: str


class Timing(BaseModel):
    """Wall-clock milliseconds spent on the request and on each TorchServe call."""

    total_ms: float
    classify_ms: float | None = None
    price_ms: float | None = None


class PredictResponse(BaseModel):
    """Category and suggested price of one product."""

    request_id: str
    category: Category
    price: Price
    product_group: str = Field(..., description="The product group the price model received.")
    product_group_source: Literal["request", "classifier"]
    ignored_fields: list[str] = Field(..., description="Request fields that the served price model does not use.")
    truncated_fields: list[str] = Field(
        default_factory=list, description="Request fields cut to the length the price model reads (the description)."
    )
    model_versions: dict[str, str] = Field(..., description="Model name to version, for both models.")
    timing: Timing


class ClassifyResponse(BaseModel):
    """Category of one product photo."""

    request_id: str
    category: Category
    model_version: str
    timing: Timing


class PriceResponse(BaseModel):
    """Suggested prices, one per request item and in request order."""

    request_id: str
    prices: list[Price]
    ignored_fields: list[str] = Field(..., description="Request fields that the served price model does not use.")
    truncated_fields: list[str] = Field(
        default_factory=list, description="Request fields cut to the length the price model reads (the description)."
    )
    timing: Timing


class HealthResponse(BaseModel):
    """Liveness of the facade process."""

    status: Literal["ok"] = "ok"


class ModelReadiness(BaseModel):
    """Readiness of one TorchServe model."""

    ready: bool
    detail: str = Field(..., description="Worker status from TorchServe, or why it could not be read.")


class ReadinessResponse(BaseModel):
    """Readiness of the whole stack: ready when both models have a READY worker."""

    status: Literal["ready", "not_ready"]
    models: dict[str, ModelReadiness]
