"""TorchServe handler for the price model (price_regressor).

A request is one JSON object with the product's text fields (the manifest's "fields",
for example "name", "description", "brand") or a list of such objects. The response
mirrors that shape, with one object per product:
    {"price": 12.5, "unit": "...", "currency": "USD", "model_version": "..."}
`currency` is null where the training data had no real currency (the H&M prices are
normalised). An invalid request gets a 4xx status and {"code", "type", "message"}.

The handler needs only ONNX Runtime and NumPy; it imports neither torch nor scikit-learn.
"""

import logging

import numpy as np

from handler_common import BatchHandler
from price_request import DEFAULT_MAX_ITEMS_PER_REQUEST, parse_price_request
from request_body import parse_json, request_payload

logger = logging.getLogger(__name__)

# Inverse of the target transform the pipeline was trained on.
INVERSE_TRANSFORMS = {"log1p": np.expm1, "none": lambda values: values}

# The ONNX output is float32, so no finite prediction exceeds this value.
MAX_PRICE = float(np.finfo(np.float32).max)


class PriceHandler(BatchHandler):
    """Suggests prices from product text with one ONNX Runtime session; see the module docstring for the protocol."""

    task = "price-regression"

    def setup(self) -> None:
        """Read fields and target from the manifest and check that they match the session's inputs."""
        self.fields = list(self.manifest["fields"])
        field_names = [field["name"] for field in self.fields]
        input_names = [node.name for node in self.session.get_inputs()]
        if sorted(field_names) != sorted(input_names):
            raise ValueError(
                f"The manifest lists the fields {field_names}, but the ONNX file has the inputs {input_names}; "
                "re-export the model so that manifest and ONNX file match."
            )
        self.output_name = self.manifest["outputs"][0]["name"]

        target = self.manifest["target"]
        transform = target.get("transform") or "none"
        if transform not in INVERSE_TRANSFORMS:
            raise ValueError(f"Unknown target transform {transform!r}; this handler supports {sorted(INVERSE_TRANSFORMS)}.")
        self.inverse_transform = INVERSE_TRANSFORMS[transform]
        self.unit = target.get("unit")
        self.currency = target.get("currency")
        self.max_items = self.config_int("max_items_per_request", DEFAULT_MAX_ITEMS_PER_REQUEST)

    def decode_request(self, request: dict) -> tuple[list[dict[str, str]], bool]:
        """Parse and validate the JSON body; return the rows and whether the body was a single object."""
        payload = parse_json(request_payload(request))
        return parse_price_request(payload, self.fields, self.max_items)

    def predict(self, items: list) -> list:
        """Predict all rows of all requests with one session.run and split the prices back per request."""
        rows = [row for item_rows, _ in items for row in item_rows]
        feeds = {
            field["name"]: np.array([[row[field["name"]]] for row in rows], dtype=object) for field in self.fields
        }
        (outputs,) = self.session.run([self.output_name], feeds)
        prices = self._to_prices(np.asarray(outputs).reshape(-1))

        bodies = []
        start = 0
        for item_rows, is_single in items:
            item_prices = prices[start : start + len(item_rows)]
            start += len(item_rows)
            item_bodies = [self._price_body(price) for price in item_prices]
            bodies.append(item_bodies[0] if is_single else item_bodies)
        return bodies

    def _to_prices(self, model_outputs: np.ndarray) -> np.ndarray:
        prices = self.inverse_transform(model_outputs.astype(np.float64))
        invalid = ~np.isfinite(prices) | (prices < 0)
        if invalid.any():
            logger.warning(
                "Clipped %d of %d price predictions that were negative or not finite", int(invalid.sum()), prices.size
            )
        prices = np.nan_to_num(prices, nan=0.0, posinf=MAX_PRICE, neginf=0.0)
        return np.clip(prices, 0.0, MAX_PRICE)

    def _price_body(self, price: float) -> dict:
        return {
            "price": float(price),
            "unit": self.unit,
            "currency": self.currency,
            "model_version": self.model_version,
        }
