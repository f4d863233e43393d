"""Model.transfer: one atomic call moving an amount and marking a transaction (API.md §4.3).

Most tests run with two layouts (the ``one_model`` fixture): accounts and transaction
markers of two models, and of one model.  On Redis Cluster only the one-model layout can
transfer (each model has its own hash slot and a transfer is one script on one node);
a transfer across models is refused there (see the last test of the first section).
"""

from __future__ import annotations

import json
import multiprocessing
import random
from decimal import Decimal

import pytest
from conftest import CLUSTER, make_client

import rom
from rom import util
from rom.scripts import get_script


@pytest.fixture(params=[True] if CLUSTER else [False, True], ids=lambda one: f"one_model={one}")
def one_model(request):
    """Whether accounts and transaction markers are entities of one model."""
    return request.param


def models(one_model=False, balance_col=None):
    """``(Account, Txn)`` models; with ``one_model`` both names are one model."""
    col = balance_col if balance_col is not None else rom.Integer(index=True, default=0)
    if one_model:

        class Account(rom.Model):
            balance = col
            name = rom.Text()
            done = rom.Integer(index=True, default=0)

        return Account, Account

    class Account(rom.Model):  # type: ignore[no-redef]
        balance = col
        name = rom.Text()

    class Txn(rom.Model):
        done = rom.Integer(index=True, default=0)

    return Account, Txn


def key(entity):
    """The standalone key name of an entity's hash."""
    return f"{type(entity)._namespace}:{entity.id}"


def idx(model, attr):
    """The standalone key name of a score or token index of ``model``."""
    return f"{model._namespace}:{attr}:idx"


def dump(conn):
    return {k: conn.dump(k) for k in conn.keys("*")}


def test_transfer_moves_the_amount_and_indexes(conn, round_trips, one_model):
    """One script call moves the amount, marks the txn and updates both score indexes."""
    Account, Txn = models(one_model)
    a, b = Account(balance=100), Account(name="no balance yet")
    t = Txn()
    rom.session.commit()
    conn.hdel(f"Account:{b.id}", "balance")  # a missing balance counts as 0
    conn.hset(f"Account:{b.id}", "-index-data-", "[{},{},{},{},{}]")
    conn.zrem("Account:balance:idx", str(b.id))
    b.refresh(force=True)
    conn.script_load(get_script("transfer").source)
    round_trips.reset()
    a.transfer(b, "balance", 30, t, "done")
    assert round_trips.count == 2  # the script, then one pipelined reload of the entities
    assert conn.hget(f"Account:{a.id}", "balance") == b"70"
    assert conn.hget(f"Account:{b.id}", "balance") == b"30"
    assert conn.hget(key(t), "done") == b"1"
    assert (a.balance, b.balance, t.done) == (70, 30, 1)
    assert conn.zscore("Account:balance:idx", str(a.id)) == 70
    assert conn.zscore("Account:balance:idx", str(b.id)) == 30
    assert conn.zscore(idx(Txn, "done"), str(t.id)) == 1
    assert "balance" in json.loads(conn.hget(f"Account:{b.id}", "-index-data-"))[1]
    b.delete()  # the recorded bookkeeping lets the delete remove the new index entry
    assert conn.zscore("Account:balance:idx", str(b.id)) is None
    a.name = "still consistent"
    a.save()


def test_already_sent_refuses(conn, one_model):
    """A marked transaction refuses with ValueError('already sent'), writing nothing."""
    Account, Txn = models(one_model)
    a, b, t = Account(balance=100), Account(), Txn()
    rom.session.commit()
    a.transfer(b, "balance", 10, t, "done")
    before = dump(conn)
    with pytest.raises(ValueError, match="already sent"):
        a.transfer(b, "balance", 10, t, "done")
    assert dump(conn) == before


def test_not_enough_credit_refuses(conn, one_model):
    """Moving more than the source holds refuses with ValueError, writing nothing."""
    Account, Txn = models(one_model)
    a, b, t = Account(balance=5), Account(), Txn()
    rom.session.commit()
    before = dump(conn)
    with pytest.raises(ValueError, match="not enough credit"):
        a.transfer(b, "balance", 6, t, "done")
    assert dump(conn) == before
    a.transfer(b, "balance", 5, t, "done")
    assert (a.balance, b.balance) == (0, 5)


def test_invalid_arguments(conn, one_model):
    """Client-side checks raise ValueError before anything is sent."""
    Account, Txn = models(one_model)
    a, b, t = Account(balance=10), Account(), Txn()
    rom.session.commit()
    with pytest.raises(ValueError):
        a.transfer(b, "balance", 0, t, "done")
    with pytest.raises(ValueError):
        a.transfer(b, "balance", -1, t, "done")
    with pytest.raises(ValueError):
        a.transfer(b, "balance", 1, t, "done", decimal_places=-1)
    with pytest.raises(ValueError):
        a.transfer(b, "balance", 1.5, t, "done")  # an Integer column moves whole amounts
    with pytest.raises(ValueError):
        a.transfer(b, "balance", "1", t, "done")
    with pytest.raises(ValueError):
        a.transfer(b, "name", 1, t, "done")
    with pytest.raises(ValueError):
        a.transfer(b, "balance", 1, t, "nope")
    with pytest.raises(ValueError):
        a.transfer(a, "balance", 1, t, "done")
    with pytest.raises(ValueError):
        a.transfer(b, "balance", 2**60, t, "done")
    b.name = "modified"
    with pytest.raises(ValueError):
        a.transfer(b, "balance", 1, t, "done")
    b.save()
    fresh = Txn()
    with pytest.raises(ValueError):
        a.transfer(b, "balance", 1, fresh, "done")
    assert conn.hget(f"Account:{a.id}", "balance") == b"10"


def test_entities_must_share_the_connection_object(conn, server_url):
    """Entities on different connection objects cannot be part of one transfer."""
    Account, _ = models()

    class Ledger(rom.Model):
        _conn = make_client(server_url)
        done = rom.Integer(default=0)

    a, b, t = Account(balance=10), Account(), Ledger()
    rom.session.commit()
    with pytest.raises(ValueError, match="connection"):
        a.transfer(b, "balance", 1, t, "done")


def test_cluster_refuses_a_transfer_across_model_slots(conn):
    """On Redis Cluster a transfer whose entities are of models in different hash slots is
    refused before anything is written; one server applies it."""
    Account, Txn = models(one_model=False)
    a, b, t = Account(balance=10), Account(), Txn()
    rom.session.commit()
    before = dump(conn)
    if CLUSTER:
        with pytest.raises(ValueError, match="one model namespace"):
            a.transfer(b, "balance", 4, t, "done")
        assert dump(conn) == before
        assert (a.balance, b.balance, t.done) == (10, 0, 0)
    else:
        a.transfer(b, "balance", 4, t, "done")
        assert (a.balance, b.balance, t.done) == (6, 4, 1)
        assert conn.hget(key(t), "done") == b"1"


def test_deleted_entity_refuses_without_creating_it(conn, one_model):
    """An entity deleted in Redis gives EntityDeletedError and no half-created hash."""
    Account, Txn = models(one_model)
    a, b, t = Account(balance=10), Account(), Txn()
    rom.session.commit()
    conn.delete(f"Account:{b.id}")
    with pytest.raises(rom.EntityDeletedError):
        a.transfer(b, "balance", 1, t, "done")
    assert not conn.exists(f"Account:{b.id}")
    assert conn.hget(key(t), "done") == b"0"


def test_float_balances_are_repr_like_and_floored(conn, one_model):
    """Float balances are stored as round-trip text; decimal_places floors them."""
    Account, Txn = models(one_model, balance_col=rom.Float(index=True, default=0.0))
    a, b = Account(balance=1.0), Account(balance=0.1)
    t1, t2 = Txn(), Txn()
    rom.session.commit()
    a.transfer(b, "balance", 0.2, t1, "done")
    assert conn.hget(f"Account:{a.id}", "balance") == b"0.8"
    assert conn.hget(f"Account:{b.id}", "balance") == repr(0.1 + 0.2).encode()
    assert b.balance == 0.1 + 0.2
    a.transfer(b, "balance", 0.5, t2, "done", decimal_places=1)
    assert conn.hget(f"Account:{a.id}", "balance") == b"0.3"
    assert conn.hget(f"Account:{b.id}", "balance") == b"0.8"
    assert conn.zscore("Account:balance:idx", str(b.id)) == 0.8
    assert isinstance(a.balance, float)


def test_float_whole_values_keep_a_dot(conn, one_model):
    """A whole Float balance is stored like Python's repr ('20.0')."""
    Account, Txn = models(one_model, balance_col=rom.Float(default=0.0))
    a, b, t = Account(balance=30.5), Account(balance=10.0), Txn()
    rom.session.commit()
    a.transfer(b, "balance", 10.5, t, "done")
    assert conn.hget(f"Account:{a.id}", "balance") == b"20.0"
    assert conn.hget(f"Account:{b.id}", "balance") == b"20.5"


def test_decimal_balances(conn, one_model):
    """Decimal balances load back as Decimal."""
    Account, Txn = models(one_model, balance_col=rom.Decimal(default=Decimal(0)))
    a, b, t = Account(balance=Decimal("10.25")), Account(), Txn()
    rom.session.commit()
    a.transfer(b, "balance", Decimal("0.25"), t, "done")
    assert a.balance == Decimal(10) and b.balance == Decimal("0.25")


def test_large_integers_stay_exact(conn, one_model):
    """Integer balances below 2**53 are exact integer text (rom 1.x could write 1e+15)."""
    Account, Txn = models(one_model)
    big = 2**53 - 10
    a, b, t = Account(balance=big), Account(balance=3), Txn()
    rom.session.commit()
    a.transfer(b, "balance", big - 1, t, "done")
    assert conn.hget(f"Account:{b.id}", "balance") == str(big + 2).encode()
    assert (a.balance, b.balance) == (1, big + 2)
    for stored in (2**53, 2**53 + 1, -(2**60)):
        c, t2 = Account(balance=stored), Txn()
        rom.session.commit()
        with pytest.raises(ValueError, match="range"):
            c.transfer(b, "balance", 1, t2, "done")
        assert conn.hget(f"Account:{c.id}", "balance") == str(stored).encode()


def test_boolean_marker_moves_its_token_index(conn, one_model):
    """A Boolean transaction column moves from the False to the True token set."""

    class Account(rom.Model):
        balance = rom.Integer(default=0)
        if one_model:
            sent = rom.Boolean(index=True, default=False)

    Txn = Account
    if not one_model:

        class Txn(rom.Model):  # type: ignore[no-redef]
            sent = rom.Boolean(index=True, default=False)

    a, b, t = Account(balance=5), Account(), Txn()
    rom.session.commit()
    unsent = {str(e.id).encode() for e in ([a, b] if one_model else [])}
    assert conn.smembers(idx(Txn, "sent:False")) == unsent | {str(t.id).encode()}
    a.transfer(b, "balance", 5, t, "sent")
    assert t.sent is True
    assert conn.smembers(idx(Txn, "sent:False")) == unsent
    assert conn.smembers(idx(Txn, "sent:True")) == {str(t.id).encode()}
    assert json.loads(conn.hget(key(t), "-index-data-"))[0] == ["sent:True"]
    with pytest.raises(ValueError, match="already sent"):
        a.transfer(b, "balance", 1, t, "sent")


def test_derived_indexes_are_rebuilt_by_a_full_save(conn, one_model):
    """Indexes a script cannot know (keygen2) are rebuilt by re-saving when refresh_index."""

    def is_rich(attr, data):
        return ["yes"] if (data.get("balance") or 0) >= 50 else ["no"]

    class Account(rom.Model):
        balance = rom.Integer(default=0)
        rich = rom.IndexOnly(keygen2=is_rich)
        if one_model:
            done = rom.Integer(default=0)

    Txn = Account
    if not one_model:

        class Txn(rom.Model):  # type: ignore[no-redef]
            done = rom.Integer(default=0)

    a, b, t = Account(balance=60), Account(balance=0), Txn()
    rom.session.commit()
    a.transfer(b, "balance", 55, t, "done")
    poor = {a.id, t.id} if one_model else {a.id}  # a one-model marker has a zero balance
    assert conn.smembers("Account:rich:yes:idx") == {str(b.id).encode()}
    assert conn.smembers("Account:rich:no:idx") == {str(i).encode() for i in poor}
    assert t.done == 1


def test_without_refresh_the_entities_keep_old_values(conn, one_model):
    """refresh_entities=False and refresh_index=False leave the objects untouched."""
    Account, Txn = models(one_model)
    a, b, t = Account(balance=10), Account(), Txn()
    rom.session.commit()
    a.transfer(b, "balance", 4, t, "done", refresh_entities=False, refresh_index=False)
    assert (a.balance, b.balance, t.done) == (10, 0, 0)
    assert conn.hget(f"Account:{a.id}", "balance") == b"6"
    assert conn.zscore("Account:balance:idx", str(a.id)) == 6  # indexed by the script anyway
    a.refresh()
    assert a.balance == 6


def test_decode_responses_transfer(decoded_conn, one_model):
    """Transfers work with a decode_responses=True client."""
    Account, Txn = models(one_model)
    a, b, t = Account(balance=10), Account(), Txn()
    rom.session.commit()
    a.transfer(b, "balance", 4, t, "done")
    assert (a.balance, b.balance, t.done) == (6, 4, 1)
    with pytest.raises(ValueError, match="already sent"):
        a.transfer(b, "balance", 1, t, "done")


# -- several processes ------------------------------------------------------------------------

N_ACCOUNTS = 6
N_TXNS = 120


def plan_of(txn_id):
    rnd = random.Random(txn_id)
    src = rnd.randrange(1, N_ACCOUNTS + 1)
    dst = (src + rnd.randrange(1, N_ACCOUNTS)) % N_ACCOUNTS + 1
    return src, dst, rnd.randrange(1, 40)


def transfer_worker(url, cluster, txn_model, txn_ids, seed, queue):
    """Try every transaction in a random order; report the ones this process applied."""
    util.CONNECTION = make_client(url, cluster)
    rom.session.rollback()
    Account, Txn = rom.columns.MODELS["Account"], rom.columns.MODELS[txn_model]
    order = list(txn_ids)
    random.Random(seed).shuffle(order)
    applied, refused = [], 0
    for txn_id in order:
        rom.session.rollback()
        src, dst, amount = plan_of(txn_id)
        a, b, t = Account.get(src), Account.get(dst), Txn.get(txn_id)
        try:
            a.transfer(b, "balance", amount, t, "done", refresh_entities=False, refresh_index=False)
        except ValueError:
            refused += 1
            continue
        applied.append(txn_id)
    queue.put(applied)


def test_concurrent_transfers_conserve_the_total(conn, server_url, one_model):
    """Processes racing over the same transactions apply each at most once, conserving money."""
    Account, Txn = models(one_model)
    accounts = [Account(balance=100) for _ in range(N_ACCOUNTS)]
    txns = [Txn() for _ in range(N_TXNS)]
    rom.session.commit()
    assert [a.id for a in accounts] == list(range(1, N_ACCOUNTS + 1))
    txn_ids = [t.id for t in txns]
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [
        ctx.Process(
            target=transfer_worker,
            args=(server_url, CLUSTER, Txn.__name__, txn_ids, seed, queue),
        )
        for seed in range(4)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    applied = [t for r in results for t in r]
    assert len(applied) == len(set(applied)) > N_TXNS // 2
    balances = {a.id: 100 for a in accounts}
    for txn_id in applied:
        src, dst, amount = plan_of(txn_id)
        balances[src] -= amount
        balances[dst] += amount
    stored = {a.id: int(conn.hget(f"Account:{a.id}", "balance")) for a in accounts}
    assert stored == balances
    assert sum(stored.values()) == 100 * N_ACCOUNTS
    assert min(stored.values()) >= 0
    marked = {t.id for t in txns if conn.hget(key(t), "done") == b"1"}
    assert marked == set(applied)
    assert {int(m) for m in conn.zrangebyscore(idx(Txn, "done"), 1, 1)} == marked
    index = {int(k): int(v) for k, v in conn.zrange("Account:balance:idx", 0, -1, withscores=True)}
    assert {k: v for k, v in index.items() if k in stored} == stored
    assert all(v == 0 for k, v in index.items() if k not in stored)  # one-model markers
