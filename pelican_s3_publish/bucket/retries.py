"""Retries: botocore's standard mode, applied to requests botocore does not send itself, and counted.

botocore keeps this policy in `botocore.retries.standard` (which failures,
how long to wait, a retry quota shared by all requests); the tests that
inject throttling, resets and cut answers fail if that module changes under it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .failures import Failure
from .interface import WriteConflict

MAX_ATTEMPTS = 5
# AWS answers 409 ConditionalRequestConflict to conditional writes that race each other, and says to retry.
ALSO_RETRIED = frozenset({"ConditionalRequestConflict"})


@dataclass(frozen=True)
class _Response:
    """The part of an HTTP answer botocore's retry policy reads."""

    status_code: int
    headers: Mapping[str, str]


class Failed(Exception):
    """A request failed for good: botocore's policy says not to try it again."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.operation)
        self.failure = failure


class Retrier:
    """botocore's standard retry mode (which failures, how long to wait, a shared quota), counted."""

    def __init__(self, operation_models: Callable[[str], Any]) -> None:
        from botocore.exceptions import ConnectionError as BotocoreConnectionError
        from botocore.retries import quota, standard

        throttling = standard.ThrottlingErrorDetector(standard.RetryEventAdapter())
        self._conditions = standard.StandardRetryConditions(max_attempts=MAX_ATTEMPTS)
        self._backoff = standard.ExponentialBackoff(throttling_detector=throttling)
        self._quota = standard.RetryQuotaChecker(quota.RetryQuota(), throttling_detector=throttling)
        self._models = operation_models
        self._no_answer = BotocoreConnectionError
        self._lock = threading.Lock()
        self.count = 0

    def call(
        self, operation: str, request: Callable[[], Any], failure_of: Callable[[Exception], Failure], retry: bool = True
    ) -> Any:
        """Run `request` until it succeeds or botocore's policy says stop; then raise `Failed`."""
        from botocore.retries.standard import RetryContext

        attempt, request_context = 1, dict[str, Any]()
        while True:
            try:
                answer = request()
            except WriteConflict:
                raise
            except Exception as error:
                failure = failure_of(error)
                context = RetryContext(
                    attempt,
                    operation_model=self._models(operation),
                    parsed_response={"Error": {"Code": failure.code}} if failure.code else None,
                    http_response=_Response(failure.status, {}) if failure.status else None,
                    caught_exception=self._no_answer(error=error) if failure.status is None else None,
                    request_context=request_context,
                )
                if not (retry and self._retryable(context, failure) and self._quota.acquire_retry_quota(context)):
                    raise Failed(failure) from None
                self.add(1)
                time.sleep(self._backoff.delay_amount(context))
                attempt += 1
                continue
            # botocore hands this its request context, as here; its stubs name another type.
            self._quota.release_retry_quota(request_context, _Response(200, {}))  # type: ignore[arg-type]
            return answer

    def _retryable(self, context: Any, failure: Failure) -> bool:
        if failure.code in ALSO_RETRIED and context.attempt_number < MAX_ATTEMPTS:
            return True
        return bool(self._conditions.is_retryable(context))

    def add(self, count: int) -> None:
        with self._lock:
            self.count += count
