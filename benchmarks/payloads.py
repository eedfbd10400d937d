"""Request factories for each benchmarked endpoint, cycling through the real inputs by index."""

from benchmarks.inputs import Photo
from benchmarks.loadgen import RequestFactory, RequestSpec


def _check_not_empty(items: list, description: str) -> None:
    if not items:
        raise ValueError(f"no {description} to send; the benchmark inputs are empty")


def torchserve_image(model_name: str, photos: list[Photo]) -> RequestFactory:
    """POST the raw JPEG bytes to TorchServe's /predictions/<model_name>, as the facade does."""
    _check_not_empty(photos, "photos")
    path = f"/predictions/{model_name}"

    def make(index: int) -> RequestSpec:
        photo = photos[index % len(photos)]
        return RequestSpec("POST", path, content=photo.data, headers={"Content-Type": "application/octet-stream"})

    return make


def facade_classify(photos: list[Photo]) -> RequestFactory:
    """POST a photo as the multipart file part `image` to the facade's /v1/classify."""
    _check_not_empty(photos, "photos")

    def make(index: int) -> RequestSpec:
        photo = photos[index % len(photos)]
        return RequestSpec("POST", "/v1/classify", files={"image": (f"{photo.name}.jpg", photo.data, "image/jpeg")})

    return make


# The facade requires these fields; description may be an empty string.
_REQUIRED_FIELDS = ("name", "description")


def _present_fields(row: dict[str, str], drop: tuple[str, ...] = ()) -> dict[str, str]:
    """Keep the required fields and the non-empty optional ones, as a client leaves out what it does not know."""
    return {
        key: value for key, value in row.items() if key not in drop and (value or key in _REQUIRED_FIELDS)
    }


def facade_predict(photos: list[Photo], rows: list[dict[str, str]]) -> RequestFactory:
    """POST a photo and a real article's text to /v1/predict without product_group.

    Without product_group the facade classifies first and feeds the label to the
    price model, so each request makes two TorchServe calls one after the other.
    """
    _check_not_empty(photos, "photos")
    _check_not_empty(rows, "text rows")

    def make(index: int) -> RequestSpec:
        photo = photos[index % len(photos)]
        text = _present_fields(rows[index % len(rows)], drop=("product_group",))
        return RequestSpec(
            "POST", "/v1/predict", files={"image": (f"{photo.name}.jpg", photo.data, "image/jpeg")}, data=text
        )

    return make


def facade_price(rows: list[dict[str, str]]) -> RequestFactory:
    """POST one real article's text as a JSON object to /v1/price."""
    _check_not_empty(rows, "text rows")

    def make(index: int) -> RequestSpec:
        return RequestSpec("POST", "/v1/price", json=_present_fields(rows[index % len(rows)]))

    return make


def torchserve_price(model_name: str, rows: list[dict[str, str]], fields: list[str]) -> RequestFactory:
    """POST one real article's text as JSON to TorchServe's /predictions/<model_name>, as the facade does.

    Like the facade, it sends only the `fields` the price model reads, because the
    price handler rejects any other field.
    """
    _check_not_empty(rows, "text rows")
    path = f"/predictions/{model_name}"

    def make(index: int) -> RequestSpec:
        row = _present_fields(rows[index % len(rows)])
        return RequestSpec("POST", path, json={name: value for name, value in row.items() if name in fields})

    return make
