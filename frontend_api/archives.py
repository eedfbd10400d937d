"""Reading the model manifest out of a TorchServe .mar archive, to configure the facade from it."""

import json
import zipfile
from pathlib import Path

MANIFEST_NAME = "manifest.json"


class ArchiveError(ValueError):
    """The archive is missing, is not a zip file or contains no readable manifest.json."""


def read_archive_manifest(archive: Path) -> dict:
    """Return manifest.json from a .mar file, which torch-model-archiver writes as a zip archive."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            with zipped.open(MANIFEST_NAME) as stream:
                return json.load(stream)
    except FileNotFoundError as error:
        raise ArchiveError(f"Model archive {archive} not found; build it with `python -m model_store build`.") from error
    except zipfile.BadZipFile as error:
        raise ArchiveError(f"{archive} is not a zip file; rebuild the archive.") from error
    except KeyError as error:
        raise ArchiveError(f"{MANIFEST_NAME} not found in {archive}; rebuild the archive from an export folder.") from error
    except json.JSONDecodeError as error:
        raise ArchiveError(f"{MANIFEST_NAME} in {archive} is not valid JSON: {error}") from error


def price_fields_from_archive(archive: Path) -> tuple[str, ...]:
    """Return the input field names of the price model in a price_regressor.mar, in manifest order."""
    manifest = read_archive_manifest(archive)
    try:
        return tuple(field["name"] for field in manifest["fields"])
    except (KeyError, TypeError) as error:
        raise ArchiveError(f"{MANIFEST_NAME} in {archive} has no valid 'fields' list; is it a price model archive?") from error
