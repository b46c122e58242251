"""Asynchronous enhance jobs: durable submission, background runs, restart recovery, expiry, and
signed callbacks with retries.

Public face:

* :class:`JobResponse` (with :class:`JobError`) — the job document: what GET answers and a callback posts.
* :class:`JobService` — submit, look up and run jobs; built and started in the app's lifespan.
* :func:`sign_body` — the ``X-Phota-Signature`` value of a callback body under a webhook secret.
* :func:`check_callback_url` — the submit-time check of a ``callback_url``.
* ``SIGNATURE_HEADER``, ``JOB_ID_HEADER``, ``ATTEMPT_HEADER`` — the callback's header names.
"""

from server.jobs._callbacks import ATTEMPT_HEADER, JOB_ID_HEADER, SIGNATURE_HEADER, check_callback_url, sign_body
from server.jobs._schemas import JobError, JobResponse
from server.jobs._service import JobService

__all__ = [
    "ATTEMPT_HEADER",
    "JOB_ID_HEADER",
    "SIGNATURE_HEADER",
    "JobError",
    "JobResponse",
    "JobService",
    "check_callback_url",
    "sign_body",
]
