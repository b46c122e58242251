"""A request's candidate profiles: the caller's own, READY, resolved before the request is admitted."""

from __future__ import annotations

from models.pipeline import KnownProfile
from server.failures import FeatureUnavailableError, NotFoundError, ProfileNotReadyError
from server.storage.profiles import ProfileStore
from server.stored_text import storable


class ProfileCandidates:
    """Turns a request's candidate profile ids into the profiles the identity stage matches against.
    ``disabled``: why identity is off on this server (any candidate is then refused with it)."""

    def __init__(self, store: ProfileStore, disabled: str | None = None) -> None:
        self._store = store
        self._disabled = disabled

    def resolve(self, account_id: str, profile_ids: list[str]) -> list[KnownProfile]:
        """The account's READY profiles ``profile_ids`` (blocking).

        Raises:
            NotFoundError: an id is unknown or belongs to another account.
            ProfileNotReadyError: a profile exists but is not READY.
            FeatureUnavailableError: identity is off here (no face models).
        """
        if self._disabled is not None and profile_ids:
            raise FeatureUnavailableError(self._disabled)
        # An id with NUL was never stored (and PostgreSQL cannot even look it up): unknown, like any other.
        found = self._store.ready_embeddings(account_id, [i for i in profile_ids if storable(i)])
        for profile_id in profile_ids:
            if profile_id not in found:
                raise NotFoundError(f"Unknown profile id {profile_id!r}.")
        for profile_id in profile_ids:
            status, _ = found[profile_id]
            if status != "READY":
                raise ProfileNotReadyError(
                    f"Profile {profile_id!r} is {status}, not READY; poll GET /v1/phota/profiles/{profile_id}/status."
                )
        return [
            KnownProfile(profile_id=profile_id, centroid=embeddings.mean(axis=0))
            for profile_id in profile_ids
            for _, embeddings in [found[profile_id]]
            if embeddings is not None
        ]
