"""Storage adapters: the database (accounts, jobs, profiles) and the file store behind signed download URLs."""

from server.storage.accounts import (
    Account,
    AccountRegistry,
    KeyAdmin,
    KeyNameTakenError,
    NamedKey,
    UnknownAccountError,
    UnknownKeyError,
    hash_api_key,
    load_or_create_dev_key,
)
from server.storage.database import Base, create_database
from server.storage.files import LocalFileStore, SignedFile
from server.storage.jobs import JobFiles, JobRecord, JobStore
from server.storage.leases import process_owner_id
from server.storage.limits import AccountLimits, RateDecision, SlotLease
from server.storage.profiles import ProfileRecord, ProfileStore
from server.storage.secrets import URL_SIGNING_SECRET, ServiceSecrets

__all__ = [
    "URL_SIGNING_SECRET",
    "Account",
    "AccountLimits",
    "AccountRegistry",
    "Base",
    "JobFiles",
    "JobRecord",
    "JobStore",
    "KeyAdmin",
    "KeyNameTakenError",
    "LocalFileStore",
    "NamedKey",
    "ProfileRecord",
    "ProfileStore",
    "RateDecision",
    "ServiceSecrets",
    "SignedFile",
    "SlotLease",
    "UnknownAccountError",
    "UnknownKeyError",
    "create_database",
    "hash_api_key",
    "load_or_create_dev_key",
    "process_owner_id",
]
