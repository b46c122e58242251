"""Each profile's files in the object store, under ``profiles/<profile_id>/``:

* ``references.json``: the references the client submitted (URLs or inline images), written before the
  profile's row is committed, so a restarted service (or another replica) can build any profile it
  accepted;
* ``reference-NN``: the fetched bytes of each usable reference, while the profile builds;
* ``picture.jpg``: the profile picture of a READY profile.

The build files are dropped when the build ends (READY or ERROR); deleting a profile drops the folder.
Every method blocks (disk or network I/O).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from server.storage.objects import LocalObjectStore, ObjectStore


class ProfileFiles:
    """Profile folders in ``objects`` under ``folder``. ``objects`` may also be a local folder (a local
    store rooted there, the profile folders directly inside it)."""

    REFERENCES = "references.json"
    PICTURE = "picture.jpg"

    def __init__(self, objects: ObjectStore | Path, folder: str = "profiles/") -> None:
        self.objects: ObjectStore = LocalObjectStore(objects) if isinstance(objects, Path) else objects
        self.folder = "" if isinstance(objects, Path) else folder

    def prefix(self, profile_id: str) -> str:
        """The profile's folder in the store (``ValueError`` for anything that is not a profile id)."""
        if not profile_id.startswith("prof_") or not profile_id[5:].isalnum():
            raise ValueError(f"not a profile id: {profile_id!r}")
        return f"{self.folder}{profile_id}/"

    @staticmethod
    def _reference_name(index: int) -> str:
        return f"reference-{index:02d}"

    def save_references(self, profile_id: str, references: list[str]) -> None:
        self.objects.put(self.prefix(profile_id) + self.REFERENCES, json.dumps(references).encode(), "application/json")

    def references(self, profile_id: str) -> list[str] | None:
        """The submitted references, or None when they are gone (profile deleted or finished)."""
        data = self.objects.get(self.prefix(profile_id) + self.REFERENCES)
        return None if data is None else [str(item) for item in json.loads(data)]

    def save_reference_image(self, profile_id: str, index: int, data: bytes) -> None:
        """Keep the fetched bytes of reference ``index`` until the build ends (not when the build is gone)."""
        if self.objects.get(self.prefix(profile_id) + self.REFERENCES) is None:
            return  # the profile was deleted or finished meanwhile
        self.objects.put(self.prefix(profile_id) + self._reference_name(index), data)

    def reference_image(self, profile_id: str, index: int) -> bytes | None:
        return self.objects.get(self.prefix(profile_id) + self._reference_name(index))

    def save_picture(self, profile_id: str, data: bytes) -> None:
        self.objects.put(self.prefix(profile_id) + self.PICTURE, data, "image/jpeg")

    def picture(self, profile_id: str) -> bytes | None:
        return self.objects.get(self.prefix(profile_id) + self.PICTURE)

    def remove_build_files(self, profile_id: str) -> None:
        """Drop the references and their fetched bytes (the build has ended); the picture stays."""
        prefix = self.prefix(profile_id)
        for item in list(self.objects.list(prefix)):
            if item.key != prefix + self.PICTURE:
                self.objects.delete(item.key)

    def remove(self, profile_id: str) -> None:
        """Drop everything of the profile."""
        self.objects.delete_prefix(self.prefix(profile_id))

    def has_build_files(self, profile_id: str) -> bool:
        prefix = self.prefix(profile_id)
        return any(item.key != prefix + self.PICTURE for item in self.objects.list(prefix))

    def profile_ids(self, min_age_s: float = 0.0) -> set[str]:
        """The ids of every profile folder in the store untouched for ``min_age_s`` (another replica may be
        writing a younger one before committing its row)."""
        newest: dict[str, float] = {}
        for item in self.objects.list(self.folder):
            profile_id = item.key[len(self.folder) :].split("/", 1)[0]
            if profile_id.startswith("prof_"):
                newest[profile_id] = max(newest.get(profile_id, 0.0), item.modified)
        cutoff = time.time() - min_age_s
        return {profile_id for profile_id, modified in newest.items() if min_age_s <= 0 or modified < cutoff}
