"""Property-based tests (hypothesis, bounded) of what a client controls: distribution filenames,
project names, the upload form and the Accept header. In process: the Falcon app through
``falcon.testing.TestClient``; no example may cause a 5xx or an exception other than ours, and
nothing is stored unless the upload is valid."""

from __future__ import annotations

import hashlib
import re
import string
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from falcon.testing import TestClient
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from private_pypi_core.dists import parse_dist_filename, validate_project
from private_pypi_core.errors import BadRequest, NotAcceptable
from private_pypi_core.state import ServerSettings
from private_pypi_core.web.app import create_app
from private_pypi_core.web.negotiation import PREFERENCE, choose_format
from tests.hardening.support import (
    JSON_V1,
    UPLOAD_CONTENT_TYPE,
    auth,
    multipart,
    sdist_bytes,
    stored_bytes,
    wheel_bytes,
    wheel_name,
)

BOUNDED = settings(
    max_examples=200,
    deadline=None,
    database=None,  # nothing written outside the test folders
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NORMALIZED = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")

# --- Filenames, names, versions ----------------------------------------------------------------

name_chars = st.sampled_from(string.ascii_letters + string.digits + "._-") | st.characters()
names = st.text(name_chars, min_size=0, max_size=10)
versions = st.from_regex(
    r"\A(v?[0-9]{1,3}(\.[0-9]{1,3}){0,2}((a|b|rc|\.post|\.dev)[0-9])?)\Z"
) | st.text(max_size=8)
tags = st.text(st.sampled_from("py3nonay_x86.") | st.characters(), max_size=8)
filenames = st.one_of(
    st.text(max_size=40),
    st.builds("{}-{}-{}-{}-{}.whl".format, names, versions, tags, tags, tags),
    st.builds(
        "{}-{}-{}-{}-{}-{}.whl".format,
        names,
        versions,
        st.from_regex(r"\A[0-9]\w{0,3}\Z"),
        tags,
        tags,
        tags,
    ),
    st.builds(
        "{}-{}{}".format, names, versions, st.sampled_from([".tar.gz", ".zip", ".tar", ".egg"])
    ),
)


@BOUNDED
@given(filenames)
def test_a_filename_parses_or_is_a_bad_request_and_accepted_ones_round_trip(filename: str) -> None:
    try:
        dist = parse_dist_filename(filename)
    except BadRequest:
        return
    assert "/" not in filename and "\\" not in filename and filename not in {"", ".", ".."}
    if filename.endswith(".whl"):
        name, version, _, _ = parse_wheel_filename(filename)
    else:
        name, version = parse_sdist_filename(filename)
    assert dist.filename == filename
    assert dist.project == canonicalize_name(name) and NORMALIZED.fullmatch(dist.project)
    assert dist.version == str(version) and Version(dist.version) == version
    assert parse_dist_filename(dist.filename) == dist


@BOUNDED
@given(filenames)
@example("demo-1.0-py3-none-an\x01y.whl")
@example("demo-1.0-py3-none-any\x00.whl")
@example("\u212aelvin-1.0-py3-none-any.whl")
@example("demo-1.0\t.tar.gz")
def test_accepted_filenames_are_printable_ascii(filename: str) -> None:
    try:
        parse_dist_filename(filename)
    except BadRequest:
        return
    assert filename.isascii() and filename.isprintable() and " " not in filename, repr(filename)


@BOUNDED
@given(st.text(max_size=30))
@example("\u212aelvin")
@example("p\u0131p")
@example("a..b")
def test_a_project_name_validates_to_its_pep_503_form_or_is_a_bad_request(name: str) -> None:
    try:
        normalized = validate_project(name)
    except BadRequest as error:
        assert repr(name) in str(error)
        return
    assert NORMALIZED.fullmatch(normalized), normalized
    assert validate_project(normalized) == normalized == canonicalize_name(name)


# --- The upload form, in process --------------------------------------------------------------


@dataclass
class App:
    client: TestClient
    root: Path
    write: dict[str, str]
    read: dict[str, str]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> App:
    root = tmp_path_factory.mktemp("fuzz") / "root"
    client = TestClient(create_app(ServerSettings(root=root, extra_index_url="")))
    secrets = tomllib.loads((root / "embedded" / "config.toml").read_text())["local"]
    return App(
        client, root, auth("local", secrets["write_secret"]), auth("local", secrets["read_secret"])
    )


GOODS = {
    wheel_name("fuzz-pkg", "1.0"): wheel_bytes("fuzz-pkg", "1.0"),
    wheel_name("fuzz-pkg", "2.0"): wheel_bytes("fuzz-pkg", "2.0"),
    wheel_name("other", "1.0"): wheel_bytes("other", "1.0"),
    "fuzz_pkg-3.0.tar.gz": sdist_bytes("fuzz-pkg", "3.0"),
}
# A NUL in a filename is a known 500 (test_bad_uploads: nul-in-tag); quotes and line breaks
# cannot be written into a Content-Disposition header.
header_safe = st.characters(blacklist_characters='\x00"\r\n', blacklist_categories=["Cs"])
ABSENT = None


def field_values(correct: str, *specials: str) -> st.SearchStrategy[str | None]:
    return st.one_of(
        st.just(ABSENT),
        st.just(correct),
        st.sampled_from([correct.upper(), f" {correct} ", "", *specials]),
        st.text(max_size=20),
    )


@st.composite
def upload_forms(draw: Callable[..., Any]) -> dict[str, Any]:
    """A twine upload of one of GOODS with a few of its parts changed (or none)."""
    target = draw(st.sampled_from(sorted(GOODS)))
    data = GOODS[target]
    dist = parse_dist_filename(target)
    filetype = "bdist_wheel" if target.endswith(".whl") else "sdist"
    choices: dict[str, st.SearchStrategy[Any]] = {
        "filename": st.one_of(
            st.sampled_from(sorted(GOODS)),
            st.text(header_safe, max_size=40),
            st.builds(
                lambda junk: target.replace("-py3", f"-py3{junk}"), st.text(header_safe, max_size=3)
            ),
        ),
        "content": st.one_of(
            st.sampled_from(list(GOODS.values())),
            st.binary(max_size=300),
            st.just(b""),
            st.just(data[: len(data) // 2]),
            st.just(ABSENT),
        ),
        ":action": field_values("file_upload", "remove_pkg", "submit"),
        "protocol_version": field_values("1"),
        "name": field_values(dist.project, "Fuzz_Pkg", "fuzz.pkg", "other"),
        "version": field_values(dist.version, "1.0.0", "01.0", "2.0"),
        "filetype": field_values(filetype, "sdist", "bdist_wheel", "bdist_egg"),
        "sha256_digest": field_values(hashlib.sha256(data).hexdigest(), "0" * 64),
        "md5_digest": field_values(hashlib.md5(data, usedforsecurity=False).hexdigest()),
        "blake2_256_digest": field_values(
            hashlib.blake2b(data, digest_size=32).hexdigest(), "f" * 64
        ),
        "requires_python": field_values(">=3.8", ">=3.8,<4", "~=3", "python3"),
    }
    correct = _corrects_for(target)
    changed = draw(st.sets(st.sampled_from(sorted(choices)), max_size=4))
    form = {key: draw(choices[key]) if key in changed else correct[key] for key in choices}
    extra = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["classifiers", "summary", "x", "content_type", "name"]),
                st.text(max_size=30),
            ),
            max_size=3,
        )
    )
    fields = {key: value for key, value in form.items() if key not in ("filename", "content")}
    parts = [(key, value) for key, value in fields.items() if value is not ABSENT] + extra
    return {
        "target": target,
        "filename": form["filename"],
        "content": form["content"],
        "parts": draw(st.permutations(parts)),
    }


def _corrects_for(target: str) -> dict[str, str | bytes]:
    """The filename, content and every field of a correct upload of ``target``."""
    data = GOODS[target]
    dist = parse_dist_filename(target)
    return {
        "filename": target,
        "content": data,
        ":action": "file_upload",
        "protocol_version": "1",
        "name": dist.project,
        "version": dist.version,
        "filetype": "bdist_wheel" if target.endswith(".whl") else "sdist",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "md5_digest": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest(),
        "requires_python": ">=3.8",
    }


def first_values(parts: list[tuple[str, str]]) -> dict[str, str | None]:
    """Each field's first value, as the server reads a form (repeated fields keep the first)."""
    values: dict[str, str | None] = dict.fromkeys(
        [
            *(":action", "protocol_version", "name", "version", "filetype", "sha256_digest"),
            *("md5_digest", "blake2_256_digest", "requires_python"),
        ]
    )
    seen = set()
    for key, value in parts:
        if key not in seen:
            values[key] = value
            seen.add(key)
    return values


def all_correct(form: dict[str, Any]) -> bool:
    """Whether every part of the form is the correct one (or an optional field is absent)."""
    correct = _corrects_for(form["target"])
    fields = first_values(form["parts"])
    return (
        form["filename"] == correct["filename"]
        and form["content"] == correct["content"]
        and all(
            value is ABSENT or value == correct[key]
            for key, value in fields.items()
            if key in correct
        )
    )


def distributions_named(filename: str) -> list[bytes]:
    """Which of GOODS may be uploaded as ``filename``: same kind of archive, same project and
    version (the tags of a wheel's filename are not checked against the wheel)."""
    dist = parse_dist_filename(filename)
    suffix = ".whl" if filename.endswith(".whl") else ".tar.gz"
    return [
        data
        for good, data in GOODS.items()
        if good.endswith(suffix)
        and parse_dist_filename(good).project == dist.project
        and Version(parse_dist_filename(good).version) == Version(dist.version)
    ]


def refusals(form: dict[str, Any]) -> list[str]:
    """Why the upload must be refused (empty when it is valid), by the rules of the issue."""
    fields, filename, content = first_values(form["parts"]), form["filename"], form["content"]
    reasons = []
    try:
        dist = parse_dist_filename(filename)
    except BadRequest:
        return ["bad filename"]
    if content is None or content not in distributions_named(filename):
        reasons.append("content is not the distribution the filename names")
    digests = {"sha256_digest": "sha256", "md5_digest": "md5", "blake2_256_digest": "blake2b"}
    for key, algorithm in digests.items():
        sent = (fields[key] or "").strip().lower()
        if sent and content is not None:
            digest = (
                hashlib.blake2b(content, digest_size=32)
                if algorithm == "blake2b"
                else hashlib.new(algorithm, content)
            )
            if sent != digest.hexdigest():
                reasons.append(f"{key} mismatch")
    if fields[":action"] not in (None, "file_upload"):
        reasons.append(":action")
    name = fields["name"]
    if name is not None:
        try:
            if validate_project(name) != dist.project:
                reasons.append("name")
        except BadRequest:
            reasons.append("name")
    if fields["version"] is not None:
        try:
            if Version(fields["version"]) != Version(dist.version):
                reasons.append("version")
        except InvalidVersion:
            reasons.append("version")
    suffixes = {"bdist_wheel": (".whl",), "sdist": (".tar.gz", ".zip")}
    if fields["filetype"] in suffixes and not filename.endswith(suffixes[fields["filetype"]]):
        reasons.append("filetype")
    requires_python = (fields["requires_python"] or "").strip()
    if requires_python:
        try:
            SpecifierSet(requires_python)
        except InvalidSpecifier:
            reasons.append("requires_python")
    return reasons


@BOUNDED
@given(upload_forms())
def test_random_upload_forms_never_fail_the_server_and_store_only_valid_uploads(
    app: App, form: dict[str, Any]
) -> None:
    files = [] if form["content"] is None else [("content", form["filename"], form["content"])]
    body = multipart(form["parts"], files)
    before = stored_bytes(app.root)
    result = app.client.simulate_post(
        "/simple/", body=body, headers={**app.write, "Content-Type": UPLOAD_CONTENT_TYPE}
    )
    assert result.status_code < 500, (result.status_code, result.text)
    event(f"status {result.status_code}")
    after = stored_bytes(app.root)
    if result.status_code != 200:
        assert 400 <= result.status_code < 500, result.text
        assert after == before, f"refused ({result.text.strip()}) but storage changed"
        assert not all_correct(form), f"a correct upload was refused: {result.text}"
        return
    reasons = refusals(form)
    assert not reasons, f"accepted although {reasons}: {result.text}"
    dist = parse_dist_filename(form["filename"])
    assert after[f"{dist.project}/{form['filename']}"] == form["content"]
    new = {
        path
        for path in set(after) - set(before) - {"index.json", ".index.lock"}
        if not path.startswith(".index-parts/")
    }
    assert new <= {
        f"{dist.project}/{form['filename']}",
        f"{dist.project}/{form['filename']}.metadata",
    }
    assert not list((app.root / "tmp").iterdir())


@BOUNDED
@given(
    st.binary(max_size=3000)
    | st.builds(lambda b: b"--hardening-7f3a9c\r\n" + b, st.binary(max_size=500)),
    st.sampled_from(
        [
            UPLOAD_CONTENT_TYPE,
            "multipart/form-data",
            "multipart/form-data; boundary=",
            'multipart/form-data; boundary=""',
            "multipart/form-data; boundary=" + "b" * 300,
            "multipart/mixed; boundary=x",
            "application/x-www-form-urlencoded",
            "text/plain",
            "",
        ]
    ),
)
def test_random_bodies_never_fail_the_server_and_store_nothing(
    app: App, body: bytes, content_type: str
) -> None:
    before = stored_bytes(app.root)
    headers = {**app.write, **({"Content-Type": content_type} if content_type else {})}
    result = app.client.simulate_post("/simple/", body=body, headers=headers)
    assert 400 <= result.status_code < 500, (result.status_code, result.text)
    assert stored_bytes(app.root) == before
    assert not list((app.root / "tmp").iterdir())


# --- Accept-header negotiation ---------------------------------------------------------------

ascii_text = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
media_ranges = st.one_of(
    st.sampled_from([*PREFERENCE, "*/*", "text/*", "application/*", "application/json", "*"]),
    st.text(st.sampled_from(string.ascii_letters + "/+.*-;=, "), max_size=25),
)
accept_headers = st.one_of(
    st.none(),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
    st.lists(
        st.tuples(
            media_ranges, st.one_of(st.none(), st.floats(-1, 2), st.text(ascii_text, max_size=4))
        ),
        max_size=5,
    ).map(lambda items: ", ".join(rng if q is None else f"{rng};q={q}" for rng, q in items)),
)
format_params = st.one_of(
    st.none(),
    st.sampled_from(["json", "html", "JSON", " json ", *PREFERENCE]),
    st.text(max_size=20),
)


@BOUNDED
@given(accept_headers, format_params)
def test_format_negotiation_answers_an_offered_format_or_a_4xx(
    app: App, accept: str | None, format_param: str | None
) -> None:
    try:
        chosen = choose_format(accept, format_param)
    except (BadRequest, NotAcceptable):
        chosen = None
    else:
        assert chosen in PREFERENCE
    headers = {**app.read, **({"Accept": accept} if accept is not None else {})}
    params = {"format": format_param} if format_param else None
    result = app.client.simulate_get("/simple/", headers=headers, params=params)
    assert result.status_code in (200, 400, 406), (result.status_code, result.text)
    event(f"status {result.status_code}")
    if chosen is not None and result.status_code == 200:
        assert result.headers["Content-Type"].split(";")[0] == chosen
    if result.status_code == 200 and chosen == JSON_V1:
        assert "projects" in result.json
