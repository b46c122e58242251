"""The job document: what ``GET /v1/phota/jobs/{job_id}`` answers and what a callback POSTs."""

from __future__ import annotations

from server.enhance_bodies import EditResponse
from server.jobs._schemas import JobError, JobResponse
from server.storage.jobs import JobRecord


def job_document(job: JobRecord, images: list[str]) -> JobResponse:
    """The document of ``job``; ``images`` are the base64 outputs of a ``bytes`` result (kept beside the
    job rather than in its row)."""
    result = None
    if job.status == "SUCCEEDED" and job.result is not None:
        result = EditResponse.model_validate({**job.result, "images": images})
    error = None
    if job.status == "FAILED":
        error = JobError(code=job.error_code or "INTERNAL_ERROR", detail=job.error_detail or "The job failed.")
    return JobResponse(
        job_id=job.id,
        status=job.status,
        result=result,
        error=error,
        created_at=job.created_at,
        completed_at=job.completed_at,
    )


def job_document_bytes(job: JobRecord, images: list[str]) -> bytes:
    """The document as compact JSON bytes: the same job always gives the same bytes (so the same
    signature on every delivery attempt)."""
    return job_document(job, images).model_dump_json().encode()
