"""One router per resource."""

from server.routes.enhance import router as enhance_router
from server.routes.files import router as files_router
from server.routes.health import router as health_router
from server.routes.hosted import router as hosted_router
from server.routes.jobs import router as jobs_router
from server.routes.page import router as page_router
from server.routes.profiles import router as profiles_router
from server.routes.webhooks import router as webhooks_router

__all__ = [
    "enhance_router",
    "files_router",
    "health_router",
    "hosted_router",
    "jobs_router",
    "page_router",
    "profiles_router",
    "webhooks_router",
]
