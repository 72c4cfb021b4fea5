"""The legacy upload form, shaped as twine sends it: the fields, then the file part."""

from __future__ import annotations


def upload_fields(project: str, version: str, sha256: str) -> dict[str, str]:
    """The form fields of a pure-Python wheel's upload."""
    return {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": project,
        "version": version,
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "metadata_version": "2.1",
        "sha256_digest": sha256,
    }


def multipart(boundary: str, fields: dict[str, str], filename: str) -> tuple[bytes, bytes]:
    """What goes before the file's bytes (every field, the file part's headers) and after."""
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    return head, f"\r\n--{boundary}--\r\n".encode()
