"""rom: a Redis object mapper for Python, compatible with rom 1.x.

Declare models with typed columns, save entities atomically, and query them through
indexes evaluated on the Redis server::

    import rom

    class User(rom.Model):
        email = rom.Text(required=True, unique=True, keygen=rom.IDENTITY_CI, suffix=True)
        created = rom.DateTime(default=datetime.datetime.utcnow, index=True)

    User(email='ann@example.com').save()
    User.get_by(email='ann@example.com')
    User.query.endswith(email='@example.com').all()
"""

from __future__ import annotations

import decimal as _decimal
from datetime import date as _date
from datetime import datetime as _datetime
from datetime import time as _time

from . import columns, exceptions, index, model, query, util
from .columns import (
    MODELS,
    MODELS_REFERENCED,
    SKIP_ON_DELETE,
    Boolean,
    Column,
    Date,
    DateTime,
    Decimal,
    Float,
    ForeignModel,
    IndexOnly,
    Integer,
    Json,
    ManyToOne,
    OneToMany,
    OneToOne,
    PrimaryKey,
    SaferDateTime,
    String,
    Text,
    Time,
    UnsafeColumn,
)
from .exceptions import (
    ColumnError,
    DataRaceError,
    EntityDeletedError,
    InvalidColumnValue,
    InvalidOperation,
    MissingColumn,
    ORMError,
    QueryError,
    RestrictError,
    UniqueKeyViolation,
)
from .index import GeneralIndex, GeoIndex, Pattern, Prefix, Suffix
from .model import Model
from .model import _ModelMetaclass as _ModelMetaclass
from .query import NOT_NULL, Query
from .util import (
    CASE_INSENSITIVE,
    FULL_TEXT,
    IDENTITY,
    IDENTITY_CI,
    IDENTITY_STRING,
    IDENTITY_STRING_CI,
    SIMPLE,
    SIMPLE_CI,
    ClassProperty,
    session,
)

# rom 1.x private helpers kept importable as rom.<name> (outside __all__)
from .util import _connect as _connect
from .util import _encode_unique_constraint as _encode_unique_constraint
from .util import _prefix_score as _prefix_score
from .util import _script_load as _script_load

__version__ = "2.0.0a1"
#: the rom API version this package is compatible with
VERSION = "1.1.2"

COLUMN_TYPES = [
    Column,
    Integer,
    Boolean,
    Float,
    Decimal,
    DateTime,
    Date,
    Time,
    String,
    Text,
    Json,
    PrimaryKey,
    ManyToOne,
    ForeignModel,
    OneToMany,
    OneToOne,
    IndexOnly,
]
NUMERIC_TYPES = (int, float, _decimal.Decimal, _datetime, _date, _time)

__all__ = [
    "CASE_INSENSITIVE",
    "COLUMN_TYPES",
    "FULL_TEXT",
    "IDENTITY",
    "IDENTITY_CI",
    "IDENTITY_STRING",
    "IDENTITY_STRING_CI",
    "MODELS",
    "MODELS_REFERENCED",
    "NOT_NULL",
    "NUMERIC_TYPES",
    "SIMPLE",
    "SIMPLE_CI",
    "SKIP_ON_DELETE",
    "VERSION",
    "Boolean",
    "ClassProperty",
    "Column",
    "ColumnError",
    "DataRaceError",
    "Date",
    "DateTime",
    "Decimal",
    "EntityDeletedError",
    "Float",
    "ForeignModel",
    "GeneralIndex",
    "GeoIndex",
    "IndexOnly",
    "Integer",
    "InvalidColumnValue",
    "InvalidOperation",
    "Json",
    "ManyToOne",
    "MissingColumn",
    "Model",
    "ORMError",
    "OneToMany",
    "OneToOne",
    "Pattern",
    "Prefix",
    "PrimaryKey",
    "Query",
    "QueryError",
    "RestrictError",
    "SaferDateTime",
    "String",
    "Suffix",
    "Text",
    "Time",
    "UniqueKeyViolation",
    "UnsafeColumn",
    "columns",
    "exceptions",
    "index",
    "model",
    "query",
    "session",
    "util",
]
