"""Storage adapters: the database (accounts, jobs, profiles) and the object store (a local folder or S3)
that holds every file, behind signed or presigned download URLs."""

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
from server.storage.files import LocalFileStore, OutputFiles, SignedFile
from server.storage.jobs import JobFiles, JobRecord, JobStore
from server.storage.leases import process_owner_id
from server.storage.limits import AccountLimits, RateDecision, SlotLease
from server.storage.objects import (
    LocalObjectStore,
    ObjectStore,
    S3ObjectStore,
    StorageConfigError,
    open_object_store,
)
from server.storage.profile_files import ProfileFiles
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
    "LocalObjectStore",
    "NamedKey",
    "ObjectStore",
    "OutputFiles",
    "ProfileFiles",
    "ProfileRecord",
    "ProfileStore",
    "RateDecision",
    "S3ObjectStore",
    "ServiceSecrets",
    "SignedFile",
    "SlotLease",
    "StorageConfigError",
    "UnknownAccountError",
    "UnknownKeyError",
    "create_database",
    "hash_api_key",
    "load_or_create_dev_key",
    "open_object_store",
    "process_owner_id",
]
