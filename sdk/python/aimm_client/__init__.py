"""Python client for the aimm (AI Multi-Model) gateway.

from aimm_client import Client
with Client() as client:  # AIMM_BASE_URL, AIMM_API_KEY
    print(client.query("Hello", model="smart").text)
"""

from aimm_client._async_client import AsyncClient, AsyncFeed, AsyncStream
from aimm_client._client import Client, Feed, Stream
from aimm_client._ops import OPERATIONS
from aimm_client._retry import RetryPolicy
from aimm_client._version import __version__
from aimm_client.errors import (
    AimmError,
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    InsufficientQuotaError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)
from aimm_client.types import (
    BatchResult,
    Comparison,
    ContentChunk,
    Feedback,
    FeedEvent,
    FinalChunk,
    LiveMetrics,
    ModelInfo,
    ModelList,
    ModelStatus,
    MultipleResult,
    QueryFailure,
    QueryResult,
    RouteInfo,
    Stats,
    StreamChunk,
    Usage,
)

__all__ = [
    "OPERATIONS",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AimmError",
    "AsyncClient",
    "AsyncFeed",
    "AsyncStream",
    "AuthenticationError",
    "BatchResult",
    "Client",
    "Comparison",
    "ContentChunk",
    "Feed",
    "FeedEvent",
    "Feedback",
    "FinalChunk",
    "InsufficientQuotaError",
    "InternalServerError",
    "InvalidRequestError",
    "LiveMetrics",
    "ModelInfo",
    "ModelList",
    "ModelStatus",
    "MultipleResult",
    "NotFoundError",
    "PermissionDeniedError",
    "QueryFailure",
    "QueryResult",
    "RateLimitError",
    "RetryPolicy",
    "RouteInfo",
    "ServiceUnavailableError",
    "Stats",
    "Stream",
    "StreamChunk",
    "UpstreamError",
    "UpstreamTimeoutError",
    "Usage",
    "__version__",
]
