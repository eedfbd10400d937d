"""Validation of price requests against the manifest's field schema.

A price request is one JSON object or a JSON list of objects. Each object maps
field names from the manifest's "fields" to strings. Absent optional fields and JSON
null become "", because the price pipeline was trained with empty strings for missing
text. Every violation raises InvalidInputError with a message naming the item, the field
and the fix.
"""

from handler_errors import InvalidInputError

DEFAULT_MAX_ITEMS_PER_REQUEST = 64


def parse_price_request(payload: object, fields: list[dict], max_items: int) -> tuple[list[dict[str, str]], bool]:
    """Validate a decoded JSON payload and return (rows, is_single_object).

    Each row maps every field name to a string. `is_single_object` is True when the
    payload was one object rather than a list, so the response can mirror that shape.
    """
    if isinstance(payload, dict):
        return [validate_item(payload, fields, where="The request")], True

    if not isinstance(payload, list):
        raise InvalidInputError(
            f"The request body is a JSON {type(payload).__name__}; send a JSON object with the product fields "
            "or a list of such objects."
        )
    if not payload:
        raise InvalidInputError("The request contains an empty list; send at least one product object.")
    if len(payload) > max_items:
        raise InvalidInputError(
            f"The request contains {len(payload)} products, above the limit of {max_items} per request; "
            "split it into several requests."
        )

    rows = []
    for index, item in enumerate(payload):
        if not isinstance(item, dict):
            raise InvalidInputError(f"Item {index} is a JSON {type(item).__name__}; each item must be a JSON object.")
        rows.append(validate_item(item, fields, where=f"Item {index}"))
    return rows, False


def validate_item(item: dict, fields: list[dict], where: str) -> dict[str, str]:
    """Check one product object against the field schema and return it with every field present."""
    known = {field["name"] for field in fields}
    unknown = sorted(set(item) - known)
    if unknown:
        raise InvalidInputError(
            f"{where} has unknown fields {unknown}; this model accepts {sorted(known)}. Remove or rename them."
        )

    row = {}
    for field in fields:
        row[field["name"]] = _field_value(item, field, where)
    return row


def _field_value(item: dict, field: dict, where: str) -> str:
    name = field["name"]
    value = item.get(name)
    if value is None:
        value = ""

    if not isinstance(value, str):
        raise InvalidInputError(
            f"{where}: field {name!r} must be a string, got {type(value).__name__} {value!r}; "
            f"send it as a JSON string, for example {str(value)!r}."
        )
    if field.get("required", False) and not value.strip():
        raise InvalidInputError(f"{where}: required field {name!r} is missing or empty; send a non-empty string.")

    max_length = field.get("max_length")
    if max_length is not None and len(value) > max_length:
        raise InvalidInputError(
            f"{where}: field {name!r} has {len(value)} characters, above the maximum of {max_length}; shorten it."
        )
    return value
