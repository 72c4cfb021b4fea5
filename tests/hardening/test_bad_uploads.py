"""Bad uploads against a real server (3 workers, max_file_bytes = 2048): each is answered 4xx
with a message a person understands, and storage, index and listing stay byte for byte the same.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from private_pypi_core.web.upload import FORM_OVERHEAD_BYTES
from tests.hardening.support import (
    BOUNDARY,
    UPLOAD_CONTENT_TYPE,
    ServerSpec,
    assert_same_snapshot,
    auth,
    chunk,
    connect,
    form_fields,
    fs_table,
    multipart,
    post_upload,
    read_response,
    readable,
    request_head,
    sdist_bytes,
    snapshot,
    temp_files,
    upload,
    upload_body,
    wait_until,
    wheel_bytes,
    wheel_name,
    write_auth,
)
from tests.server import RunningServer

MAX_FILE_BYTES = 2048
PROJECT, VERSION = "demo-pkg", "2.0"  # never stored: a wrongly accepted upload shows
GOOD_NAME = wheel_name(PROJECT, VERSION)
GOOD = wheel_bytes(PROJECT, VERSION)
SDIST_NAME = "demo_pkg-2.0.tar.gz"
SDIST = sdist_bytes(PROJECT, VERSION)
OVERSIZE = wheel_bytes(PROJECT, VERSION, payload=os.urandom(4 * MAX_FILE_BYTES))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Repository ``local`` (max_file_bytes = 2048) holding demo-pkg 1.0 and other-pkg 1.0."""
    spec = ServerSpec(
        tmp_path_factory.mktemp("bad-uploads") / "root",
        {"local": fs_table("local", max_file_bytes=MAX_FILE_BYTES)},
        ("--workers=3",),
    )
    running = spec.start()
    try:
        for name in ("demo-pkg", "other-pkg"):
            response = upload(
                running, wheel_name(name, "1.0"), wheel_bytes(name, "1.0"), name=name, version="1.0"
            )
            assert response.status_code == 200, response.text
        yield running
    finally:
        running.stop()


@dataclass(frozen=True)
class Bad:
    """A bad upload and the answer it must get."""

    body: bytes
    status: int
    message: str  # a phrase the answer must contain
    content_type: str | None = UPLOAD_CONTENT_TYPE
    credential: str = "write"  # write, read or none


def with_filename(
    filename: str,
    data: bytes = GOOD,
    *,
    name: str = PROJECT,
    version: str = VERSION,
    **overrides: str | None,
) -> bytes:
    """An upload of ``data`` as ``filename``, with the fields twine would send."""
    return multipart(
        form_fields(filename, data, name=name, version=version, **overrides),
        [("content", filename, data)],
    )


def good_form(*, name: str = PROJECT, version: str = VERSION, **overrides: str | None) -> bytes:
    """The good upload with some form fields changed."""
    return with_filename(GOOD_NAME, GOOD, name=name, version=version, **overrides)


def bad_filename(filename: str, data: bytes = GOOD, *, name: str = PROJECT) -> Bad:
    return Bad(with_filename(filename, data, name=name), 400, "invalid filename")


CASES = {
    # -- the filename --
    "dotdot-slash": bad_filename("../demo_pkg-2.0-py3-none-any.whl"),
    "subfolder": bad_filename("pkgs/demo_pkg-2.0-py3-none-any.whl"),
    "absolute": bad_filename("/tmp/demo_pkg-2.0-py3-none-any.whl"),
    "backslash": bad_filename("..\\demo_pkg-2.0-py3-none-any.whl"),
    "windows-path": bad_filename("C:\\dist\\demo_pkg-2.0-py3-none-any.whl"),
    "dotdot": bad_filename(".."),
    "trailing-dotdot": bad_filename("demo_pkg-2.0-py3-none-any.whl/.."),
    "empty": bad_filename(""),
    "nul-before-suffix": bad_filename("demo_pkg-2.0-py3-none-any.whl\x00.txt"),
    "nul-in-name": bad_filename("demo\x00pkg-2.0-py3-none-any.whl"),
    "newline-in-name": bad_filename("demo\npkg-2.0-py3-none-any.whl"),
    "cyrillic-lookalike": bad_filename("d\u0435mo_pkg-2.0-py3-none-any.whl"),
    "fullwidth-lookalike": bad_filename("\uff44emo_pkg-2.0-py3-none-any.whl"),
    "dotless-i-lookalike": bad_filename(
        "p\u0131p-2.0-py3-none-any.whl", wheel_bytes("p\u0131p", "2.0"), name="pip"
    ),
    "no-distribution-suffix": Bad(with_filename("demo_pkg-2.0.exe"), 400, "expected a wheel"),
    "nul-in-tag": pytest.param(bad_filename("demo_pkg-2.0-py3-none-any\x00.whl")),
    "control-in-tag": pytest.param(bad_filename("demo_pkg-2.0-py3-none-an\x01y.whl")),
    "escape-sequence-in-tag": pytest.param(bad_filename("demo_pkg-2.0-py3-none-any\x1b[2J.whl")),
    "bidi-override-in-tag": pytest.param(bad_filename("demo_pkg-2.0-py3-none-any\u202e.whl")),
    "tab-in-sdist-version": pytest.param(bad_filename("demo_pkg-2.0\t.tar.gz", SDIST)),
    "kelvin-sign-lookalike": pytest.param(
        bad_filename("\u212ait-2.0-py3-none-any.whl", wheel_bytes("kit", "2.0"), name="kit"),
    ),
    # -- the filename against the form and the archive --
    "name-mismatch": Bad(good_form(name="other-pkg"), 400, "names project"),
    "version-mismatch": Bad(good_form(version="9.9"), 400, "names version"),
    "metadata-version-mismatch": Bad(
        with_filename(GOOD_NAME, wheel_bytes(PROJECT, VERSION, metadata_version="2.1")),
        400,
        "names version",
    ),
    "metadata-name-mismatch": Bad(
        with_filename(GOOD_NAME, wheel_bytes(PROJECT, VERSION, metadata_name="other-pkg")),
        400,
        "names project",
    ),
    "sdist-filetype-for-wheel": Bad(good_form(filetype="sdist"), 400, "does not match the file"),
    "wheel-filetype-for-sdist": Bad(
        with_filename(SDIST_NAME, SDIST, filetype="bdist_wheel"), 400, "does not match the file"
    ),
    "corrupt-zip-as-wheel": Bad(
        with_filename(GOOD_NAME, b"PK\x03\x04" + b"not a zip" * 20), 400, "not a valid archive"
    ),
    "truncated-wheel": Bad(
        with_filename(GOOD_NAME, GOOD[: len(GOOD) // 2]), 400, "not a valid archive"
    ),
    "corrupt-sdist": Bad(
        with_filename(SDIST_NAME, b"\x1f\x8b" + b"not gzip" * 20), 400, "not a valid archive"
    ),
    "wheel-without-metadata": Bad(
        with_filename(GOOD_NAME, wheel_bytes(PROJECT, VERSION, metadata=False)),
        400,
        ".dist-info/METADATA",
    ),
    "sdist-without-pkg-info": Bad(
        with_filename(SDIST_NAME, sdist_bytes(PROJECT, VERSION, base="a/b")), 400, "PKG-INFO"
    ),
    "empty-file": Bad(with_filename(GOOD_NAME, b""), 400, "is empty"),
    # -- digests --
    "wrong-sha256": Bad(good_form(sha256_digest="0" * 64), 400, "sha256_digest sent does not"),
    "wrong-md5": Bad(good_form(md5_digest="0" * 32), 400, "md5_digest sent does not"),
    "wrong-blake2": Bad(good_form(blake2_256_digest="0" * 64), 400, "blake2_256_digest sent"),
    # -- other fields --
    "unsupported-action": Bad(good_form(**{":action": "remove_pkg"}), 400, "Unsupported :action"),
    "bad-requires-python": Bad(good_form(requires_python="not >= a spec"), 400, "requires_python"),
    "huge-text-field": Bad(
        multipart(
            [
                *form_fields(GOOD_NAME, GOOD, name=PROJECT, version=VERSION),
                ("description", "x" * ((1 << 20) + 1)),
            ],
            [("content", GOOD_NAME, GOOD)],
        ),
        400,
        "too large",
    ),
    # -- the form itself --
    "missing-content": Bad(
        multipart(form_fields(GOOD_NAME, GOOD, name=PROJECT, version=VERSION)), 400, "no 'content'"
    ),
    "content-without-filename": Bad(
        multipart([(":action", "file_upload")], [("content", None, GOOD)]), 400, "invalid filename"
    ),
    "two-contents": Bad(
        multipart([], [("content", GOOD_NAME, GOOD), ("content", GOOD_NAME, GOOD)]),
        400,
        "more than one 'content'",
    ),
    "json-body": Bad(b'{"content": "x"}', 400, "multipart/form-data", "application/json"),
    "urlencoded-body": Bad(
        b":action=file_upload&name=demo-pkg",
        400,
        "multipart/form-data",
        "application/x-www-form-urlencoded",
    ),
    "no-content-type": Bad(good_form(), 400, "multipart/form-data", None),
    "not-multipart-at-all": Bad(b"just some bytes\r\n", 400, "cannot be read"),
    "other-boundary": Bad(
        good_form().replace(BOUNDARY.encode(), b"another-boundary"), 400, "cannot be read"
    ),
    "unterminated-form": Bad(good_form()[: -len(f"--{BOUNDARY}--\r\n")], 400, "cannot be read"),
    # -- size --
    "file-over-max-file-bytes": Bad(with_filename(GOOD_NAME, OVERSIZE), 413, "larger than"),
    # -- credentials --
    "read-secret": Bad(good_form(), 403, "write secret", credential="read"),
    "no-credentials": Bad(good_form(), 401, "Credentials needed", credential="none"),
    # -- a published distribution under another spelling of its filename --
    "same-release-other-case": pytest.param(
        Bad(
            with_filename(
                "Demo_Pkg-1.0-py3-none-any.whl",
                wheel_bytes("demo-pkg", "1.0", payload=b"evil"),
                version="1.0",
            ),
            409,
            "already",
        ),
    ),
    "same-release-other-version-spelling": pytest.param(
        Bad(
            with_filename(
                "demo_pkg-1.0.0-py3-none-any.whl",
                wheel_bytes("demo-pkg", "1.0", payload=b"evil"),
                version="1.0",
            ),
            409,
            "already",
        ),
    ),
}


def headers_for(server: RunningServer, credential: str) -> dict[str, str]:
    if credential == "none":
        return {}
    return auth("local", server.secret("local", credential))


def assert_refused(response: requests.Response, status: int, message: str) -> None:
    assert response.status_code == status, f"{response.status_code}: {response.text!r}"
    assert response.headers["Content-Type"].startswith("text/plain"), response.headers
    text = response.text
    assert message in text, f"{message!r} not in {text!r}"
    assert "Traceback" not in text and len(text) < 2000, text


def assert_nothing_left(server: RunningServer) -> None:
    assert wait_until(lambda: not temp_files(server.root), timeout=5), temp_files(server.root)


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_upload_is_refused_and_changes_nothing(server: RunningServer, case: Bad) -> None:
    before = snapshot(server)
    response = post_upload(
        server, case.body, headers_for(server, case.credential), content_type=case.content_type
    )
    assert_refused(response, case.status, case.message)
    assert_nothing_left(server)
    assert_same_snapshot(before, snapshot(server))


# --- Over max_file_bytes, on the wire ---------------------------------------------------------


def test_declared_oversize_body_is_refused_from_content_length_before_it_is_sent(
    server: RunningServer,
) -> None:
    before = snapshot(server)
    declared = MAX_FILE_BYTES + FORM_OVERHEAD_BYTES + (1 << 20)
    head = request_head(
        "POST",
        "/simple/",
        {**write_auth(server), "Content-Type": UPLOAD_CONTENT_TYPE},
        content_length=declared,
    )
    first = with_filename(GOOD_NAME, OVERSIZE)[:1024]
    with connect(server.port) as sock:
        sock.sendall(head + first)
        assert readable(sock, timeout=10), "no answer while the body was still unsent"
        response = read_response(sock)
    assert response.status == 413, (response.status, response.text)
    assert "larger than this repository accepts" in response.text, response.text
    assert str(MAX_FILE_BYTES) in response.text
    assert_nothing_left(server)
    assert_same_snapshot(before, snapshot(server))


def test_chunked_oversize_body_is_refused_while_streaming(server: RunningServer) -> None:
    before = snapshot(server)
    head = request_head(
        "POST",
        "/simple/",
        {**write_auth(server), "Content-Type": UPLOAD_CONTENT_TYPE},
        content_length=None,
    )
    preamble = with_filename(GOOD_NAME, b"")
    preamble = preamble[: preamble.index(b"\r\n\r\n", preamble.index(b'name="content"')) + 4]
    limit, sent = 16 << 20, 0
    piece = os.urandom(4096)
    with connect(server.port) as sock:
        sock.sendall(head + chunk(preamble))
        try:
            while sent < limit and not readable(sock):
                sock.sendall(chunk(piece))
                sent += len(piece)
                if sent % (256 << 10) == 0:
                    time.sleep(0.01)  # give the server a moment to answer
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = read_response(sock)
    assert response.status == 413, (response.status, response.text)
    assert "larger than this repository accepts" in response.text, response.text
    assert sent < limit, f"the server read all {sent} bytes of the chunked body before refusing"
    assert_nothing_left(server)
    assert_same_snapshot(before, snapshot(server))


# --- A body cut off mid-stream ----------------------------------------------------------------


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_body_cut_off_mid_stream_stores_nothing_and_the_server_still_serves(
    server: RunningServer, framing: str
) -> None:
    version = "3.0" if framing == "content-length" else "3.1"
    filename, data = wheel_name(PROJECT, version), wheel_bytes(PROJECT, version)
    body = upload_body(filename, data, name=PROJECT, version=version)
    cut = body.index(data) + len(data) // 2  # in the middle of the file's bytes
    before = snapshot(server)
    head = request_head(
        "POST",
        "/simple/",
        {**write_auth(server), "Content-Type": UPLOAD_CONTENT_TYPE},
        content_length=len(body) if framing == "content-length" else None,
    )
    sock = connect(server.port)
    try:
        sock.sendall(head + (body[:cut] if framing == "content-length" else chunk(body[:cut])))
        # The server is receiving: its temp file for this upload exists.
        assert wait_until(lambda: any((server.root / "tmp").iterdir()), timeout=5)
    finally:
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
    assert_nothing_left(server)
    assert_same_snapshot(before, snapshot(server))
    # Nothing of the cut-off upload is in the way: the whole upload now succeeds.
    response = post_upload(server, body, write_auth(server))
    assert response.status_code == 200, response.text
    assert response.text == f"Published {filename}\n"


def test_chunked_form_of_oversize_text_fields_is_refused_while_streaming(
    server: RunningServer,
) -> None:
    before = snapshot(server)
    head = request_head(
        "POST",
        "/simple/",
        {**write_auth(server), "Content-Type": UPLOAD_CONTENT_TYPE},
        content_length=None,
    )
    field = b"x" * (1 << 20)
    total, sent = 6 << 20, 0
    with connect(server.port) as sock:
        sock.sendall(head)
        try:
            for i in range(total // len(field)):
                if readable(sock):
                    break
                part = multipart([(f"field{i}", field)])[: -len(f"--{BOUNDARY}--\r\n")]
                sock.sendall(chunk(part))
                sent += len(part)
            else:
                sock.sendall(chunk(f"--{BOUNDARY}--\r\n".encode()) + b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = read_response(sock)
    assert_nothing_left(server)
    assert_same_snapshot(before, snapshot(server))
    assert response.status == 413, (response.status, response.text, f"{sent} bytes sent")
