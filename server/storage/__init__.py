"""Storage adapters: the database (accounts) and the file store behind signed download URLs."""

from server.storage.accounts import Account, AccountRegistry, hash_api_key, load_or_create_dev_key
from server.storage.database import Base, create_database
from server.storage.files import LocalFileStore, SignedFile

__all__ = [
    "Account",
    "AccountRegistry",
    "Base",
    "LocalFileStore",
    "SignedFile",
    "create_database",
    "hash_api_key",
    "load_or_create_dev_key",
]
