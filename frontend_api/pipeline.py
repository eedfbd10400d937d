"""How the facade combines the two models for one product.

Without a product group in the request, the classifier runs first and its top label
becomes the price model's product_group. With one, both calls run concurrently. The
price model receives only the fields it was trained on (FPS_PRICE_FIELDS), because
its handler rejects unknown fields. The response lists the other fields as ignored.
"""

import asyncio
import time

from frontend_api.errors import InvalidInput
from frontend_api.schemas import (
    PRICED_DESCRIPTION_CHARS,
    ClassifyResponse,
    PredictResponse,
    PriceResponse,
    ProductText,
    Timing,
)
from frontend_api.upstream import Classification, Pricing, TorchServeClient


def check_product_group(text: ProductText, product_groups: tuple[str, ...]) -> None:
    """Raise InvalidInput when the request names a product group the classifier does not know."""
    if text.product_group is not None and text.product_group not in product_groups:
        raise InvalidInput(
            "product_group",
            f"{text.product_group!r} is not a known product group; use one of {list(product_groups)} "
            "or leave the field out (FPS_PRODUCT_GROUPS sets the list)",
        )


def split_price_fields(
    text: ProductText, price_fields: tuple[str, ...]
) -> tuple[dict[str, str], list[str], list[str]]:
    """Return the fields the price model reads, the names of those it does not read, and the truncated ones."""
    given = text.model_dump(exclude_none=True)
    used = {name: value for name, value in given.items() if name in price_fields}
    ignored = sorted(name for name in given if name not in price_fields)

    truncated = []
    if len(used.get("description", "")) > PRICED_DESCRIPTION_CHARS:
        used["description"] = used["description"][:PRICED_DESCRIPTION_CHARS]
        truncated.append("description")
    return used, ignored, truncated


async def predict(
    client: TorchServeClient, price_fields: tuple[str, ...], image: bytes, text: ProductText, request_id: str
) -> PredictResponse:
    """Classify the photo and price the product, chaining or overlapping the two calls."""
    started = time.perf_counter()
    item, ignored, truncated = split_price_fields(text, price_fields)

    if text.product_group is not None:
        classification, pricing = await _classify_and_price_concurrently(client, image, item, request_id)
        product_group, source = text.product_group, "request"
    else:
        classification = await client.classify(image, request_id)
        product_group, source = classification.category.label, "classifier"
        if "product_group" in price_fields:
            item["product_group"] = product_group
        pricing = await client.price([item], request_id)

    price = pricing.prices[0]
    return PredictResponse(
        request_id=request_id,
        category=classification.category,
        price=price,
        product_group=product_group,
        product_group_source=source,
        ignored_fields=ignored,
        truncated_fields=truncated,
        model_versions={
            client.classifier_model: classification.model_version,
            client.price_model: price.model_version,
        },
        timing=Timing(
            total_ms=_elapsed_ms(started), classify_ms=classification.elapsed_ms, price_ms=pricing.elapsed_ms
        ),
    )


async def _classify_and_price_concurrently(
    client: TorchServeClient, image: bytes, item: dict[str, str], request_id: str
) -> tuple[Classification, Pricing]:
    """Run both calls at once; wait for both, then raise the classifier's error first if both failed."""
    classification, pricing = await asyncio.gather(
        client.classify(image, request_id), client.price([item], request_id), return_exceptions=True
    )
    # Waiting for both (return_exceptions=True) means no call is left running after the
    # response, so every upstream call is counted in the metrics of its own request.
    for result in (classification, pricing):
        if isinstance(result, BaseException):
            raise result
    return classification, pricing


async def classify(client: TorchServeClient, image: bytes, request_id: str) -> ClassifyResponse:
    """Classify one photo."""
    started = time.perf_counter()
    classification = await client.classify(image, request_id)
    return ClassifyResponse(
        request_id=request_id,
        category=classification.category,
        model_version=classification.model_version,
        timing=Timing(total_ms=_elapsed_ms(started), classify_ms=classification.elapsed_ms),
    )


async def price(
    client: TorchServeClient, price_fields: tuple[str, ...], texts: list[ProductText], request_id: str
) -> PriceResponse:
    """Price a list of products in one TorchServe request."""
    started = time.perf_counter()
    items = []
    ignored: set[str] = set()
    truncated: set[str] = set()
    for text in texts:
        item, item_ignored, item_truncated = split_price_fields(text, price_fields)
        items.append(item)
        ignored.update(item_ignored)
        truncated.update(item_truncated)

    pricing = await client.price(items, request_id)
    return PriceResponse(
        request_id=request_id,
        prices=pricing.prices,
        ignored_fields=sorted(ignored),
        truncated_fields=sorted(truncated),
        timing=Timing(total_ms=_elapsed_ms(started), price_ms=pricing.elapsed_ms),
    )


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
