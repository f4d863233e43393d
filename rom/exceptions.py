"""Exceptions raised by rom.

Every error rom raises on purpose derives from :class:`ORMError`, so an application can
catch that one class.  The tree is the one rom 1.x has::

    ORMError
    ├── UniqueKeyViolation
    ├── InvalidOperation
    │   ├── QueryError
    │   ├── RestrictError
    │   ├── DataRaceError
    │   └── EntityDeletedError
    ├── ColumnError
    │   ├── MissingColumn
    │   ├── InvalidColumnValue
    │   └── UnsafeError
    └── BulkError
"""

from __future__ import annotations

__all__ = [
    "BulkError",
    "ColumnError",
    "DataRaceError",
    "EntityDeletedError",
    "InvalidColumnValue",
    "InvalidOperation",
    "MissingColumn",
    "ORMError",
    "QueryError",
    "RestrictError",
    "UniqueKeyViolation",
]


class ORMError(Exception):
    """Base class of every exception rom raises on purpose."""


class UniqueKeyViolation(ORMError):
    """A save would give a unique value that another entity already owns.

    ``args == (message, namespace, pk)``.
    """


class InvalidOperation(ORMError):
    """The operation is not allowed in the entity's current state."""


class QueryError(InvalidOperation):
    """A query, ``get_by`` or index argument is invalid."""


class RestrictError(InvalidOperation):
    """A delete was refused by an ``on_delete='restrict'`` reference."""


class DataRaceError(InvalidOperation):
    """Another writer changed a column this save was about to overwrite.

    Also raised by :class:`rom.util.Lock` used as a context manager when the lock is held.
    """


class EntityDeletedError(InvalidOperation):
    """The entity's data no longer exists in Redis (deleted by someone else)."""


class ColumnError(ORMError):
    """A column or model definition is invalid, or a column operation is impossible."""


class MissingColumn(ColumnError):
    """A required column got no value when a new entity was constructed."""


class InvalidColumnValue(ColumnError):
    """A value cannot be converted to the column's type."""


class UnsafeError(ColumnError):
    """Kept for compatibility with rom 1.x; never raised."""


class BulkError(ORMError):
    """Kept for compatibility with rom 1.x; never raised."""


class DurabilityError(ORMError):
    """Fewer replicas than asked acknowledged a write (see ``rom.util.set_durability``).

    The write reached the master; it may be lost if the master fails before a replica
    receives it.  Not part of rom 1.x (outside ``__all__``).
    """
