"""Broken and oversized uploads to the facade: each gets a 4xx that names the problem.

The framing cases build multipart bodies by hand, because HTTP clients refuse to send
most of these mistakes. The oversized cases use a raw socket, to see whether the facade
responds while the client is still sending.
"""

import re
import select
import socket
from urllib.parse import urlsplit

import httpx
import pytest

from frontend_api.settings import DEFAULT_MAX_UPLOAD_BYTES
from tests.hardening.conftest import assert_no_stack_trace, classify_photo

BOUNDARY = "hardening-boundary-7d1f"
CHUNK_BYTES = 1 << 20
# An oversized upload stops long before this; the size bounds the test if it does not.
OVERSIZED_UPLOAD_BYTES = 10 * DEFAULT_MAX_UPLOAD_BYTES


def multipart_body(parts: list[tuple[str, bytes]]) -> bytes:
    """Build a multipart/form-data body from (part headers, part content) pairs."""
    body = b""
    for headers, content in parts:
        body += f"--{BOUNDARY}\r\n{headers}\r\n\r\n".encode() + content + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def post_multipart(client: httpx.Client, path: str, body: bytes) -> httpx.Response:
    return client.post(path, content=body, headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})


def field_names(response: httpx.Response) -> list[str]:
    return [item["field"] for item in response.json()["fields"]]


@pytest.mark.parametrize("path", ["/v1/classify", "/v1/predict"])
def test_zero_byte_upload_is_422(path, product_fields, facade_client):
    response = facade_client.post(path, files={"image": ("photo.jpg", b"", "image/jpeg")}, data=product_fields)

    assert response.status_code == 422, response.text
    assert field_names(response) == ["image"]
    assert "empty" in response.json()["message"]


@pytest.mark.parametrize("path", ["/v1/classify", "/v1/predict"])
def test_two_image_parts_are_422(path, photo_bytes, product_fields, facade_client):
    photo = ("photo.jpg", photo_bytes, "image/jpeg")
    data = product_fields if path == "/v1/predict" else None

    response = facade_client.post(path, files=[("image", photo), ("image", photo)], data=data)

    assert response.status_code == 422, response.text
    assert field_names(response) == ["image"]
    assert "2 times" in response.json()["message"]


@pytest.mark.parametrize("path", ["/v1/classify", "/v1/predict"])
def test_missing_file_field_is_422(path, photo_bytes, product_fields, facade_client):
    # The photo arrives under another part name, next to the product text for /v1/predict.
    parts = [('Content-Disposition: form-data; name="photo"; filename="photo.jpg"', photo_bytes)]
    if path == "/v1/predict":
        parts += [(f'Content-Disposition: form-data; name="{name}"', value.encode()) for name, value in product_fields.items()]

    response = post_multipart(facade_client, path, multipart_body(parts))

    assert response.status_code == 422, response.text
    assert field_names(response) == ["image"], response.text
    assert_no_stack_trace(response)


@pytest.mark.parametrize("path", ["/v1/classify", "/v1/predict"])
def test_file_without_filename_is_422(path, photo_bytes, product_fields, facade_client):
    # Without a filename, multipart parsers treat the part as a text field.
    parts = [('Content-Disposition: form-data; name="image"\r\nContent-Type: image/jpeg', photo_bytes)]
    if path == "/v1/predict":
        parts += [(f'Content-Disposition: form-data; name="{name}"', value.encode()) for name, value in product_fields.items()]

    response = post_multipart(facade_client, path, multipart_body(parts))

    assert response.status_code == 422, response.text
    assert field_names(response) == ["image"]
    assert "file part" in response.json()["message"]


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml", "image/jpeg", None],
    ids=["text", "urlencoded", "xml", "raw-jpeg", "none"],
)
@pytest.mark.parametrize("path", ["/v1/classify", "/v1/predict"])
def test_wrong_content_type_is_415(path, content_type, photo_bytes, facade_client):
    headers = {"Content-Type": content_type} if content_type else {}

    response = facade_client.post(path, content=photo_bytes, headers=headers)

    assert response.status_code == 415, response.text
    assert response.json()["error"] == "unsupported_media_type"
    assert "multipart/form-data" in response.json()["message"]


def test_multipart_without_boundary_is_400(photo_bytes, facade_client):
    response = facade_client.post("/v1/classify", content=photo_bytes, headers={"Content-Type": "multipart/form-data"})

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "malformed_request"


@pytest.mark.parametrize("text", ["not base64 at all!", "abc", "/9j/4AAQ\u524f", "data:image/jpeg;base64,\u00e9t\u00e9"], ids=["punctuation", "bad-padding", "non-ascii", "non-ascii-data-url"])
@pytest.mark.parametrize("path", ["/v1/classify", "/v1/predict"])
def test_invalid_base64_is_422(path, text, product_fields, facade_client):
    payload = {"image_base64": text} if path == "/v1/classify" else {**product_fields, "image_base64": text}

    response = facade_client.post(path, json=payload)

    assert response.status_code == 422, response.text
    assert field_names(response) == ["image_base64"]


def test_part_content_type_does_not_matter(photo_bytes, facade_client):
    # The server reads the file's bytes, not the type the client declared for the part.
    response = facade_client.post("/v1/classify", files={"image": ("photo.txt", photo_bytes, "text/plain")})

    assert response.status_code == 200, response.text


# --- Uploads over the limit ----------------------------------------------------------


def open_socket(facade) -> socket.socket:
    address = urlsplit(facade.base_url)
    connection = socket.create_connection((address.hostname, address.port), timeout=30)
    return connection


def read_response(connection: socket.socket) -> bytes:
    """Read the response headers and the body that their Content-Length announces."""
    received = b""
    while True:
        head, separator, body = received.partition(b"\r\n\r\n")
        if separator:
            lengths = re.findall(rb"(?im)^content-length: *(\d+)", head)
            if not lengths or len(body) >= int(lengths[0]):
                return received
        try:
            data = connection.recv(65536)
        except ConnectionResetError:
            return received
        if not data:
            return received
        received += data


def send_until_answered(connection: socket.socket, chunks, limit_bytes: int) -> tuple[int, bytes]:
    """Send chunks until a response arrives, the server closes the connection, or `limit_bytes` are sent."""
    sent = 0
    for chunk in chunks:
        # A short wait per chunk lets the response arrive before the next megabyte is sent.
        readable, _, _ = select.select([connection], [], [], 0.02)
        if readable or sent >= limit_bytes:
            break
        try:
            connection.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(chunk)
    return sent, read_response(connection)


def test_declared_oversized_upload_is_413_unread(facade):
    declared = OVERSIZED_UPLOAD_BYTES
    connection = open_socket(facade)
    try:
        connection.sendall(
            (
                "POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {declared}\r\n\r\n"
            ).encode()
        )
        chunks = (b"\xff" * CHUNK_BYTES for _ in range(declared // CHUNK_BYTES))
        sent, response = send_until_answered(connection, chunks, declared)
    finally:
        connection.close()

    assert response.startswith(b"HTTP/1.1 413"), response[:300]
    assert b"FPS_MAX_UPLOAD_BYTES" in response
    assert sent < declared, "the facade answered only after the whole body was sent"


def test_chunked_oversized_upload_is_413_unread(facade):
    # Without Content-Length the facade counts the bytes as they arrive.
    connection = open_socket(facade)
    part_head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="big.jpg"\r\n\r\n'.encode()
    try:
        connection.sendall(
            (
                "POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\n\r\n"
            ).encode()
        )
        connection.sendall(f"{len(part_head):x}\r\n".encode() + part_head + b"\r\n")
        chunk = f"{CHUNK_BYTES:x}\r\n".encode() + b"\xff" * CHUNK_BYTES + b"\r\n"
        chunks = (chunk for _ in range(OVERSIZED_UPLOAD_BYTES // CHUNK_BYTES))
        sent, response = send_until_answered(connection, chunks, OVERSIZED_UPLOAD_BYTES)
    finally:
        connection.close()

    assert response.startswith(b"HTTP/1.1 413"), response[:300]
    assert b"payload_too_large" in response
    assert sent < OVERSIZED_UPLOAD_BYTES, "the facade answered only after the whole body was sent"


def test_facade_serves_after_bad_uploads(photo_bytes, facade_client):
    # Runs last in this module: the broken uploads above must not have hurt the facade.
    response = classify_photo(facade_client, photo_bytes)

    assert response.status_code == 200, response.text
