"""Meter for LiteLLM (SDK and proxy): reserve before each call, record after, deny with a 429.

    import litellm
    from meter.integrations.litellm import MeterCallback

    litellm.callbacks = [MeterCallback(address="meter:50051", api_key="mk_...")]   # check + record roles

or in the proxy's config.yaml (docs/integrations.md):

    litellm_settings:
      callbacks: meter.integrations.litellm.meter_callback    # METER_ADDRESS, METER_API_KEY from the env

What happens per call:
  * before it (`async_pre_call_deployment_hook`, which LiteLLM runs for `litellm.acompletion` and for
    every proxy request once a deployment is picked): `CheckQuota(RESERVE)` for the subject, with the
    request's input tokens (LiteLLM's own token counter) and its `max_tokens` as the estimate, the
    reservation id being LiteLLM's call id. A denial raises `litellm.RateLimitError`, which LiteLLM
    and its proxy answer with HTTP 429; the provider is never called.
  * after it (`async_log_success_event`, streaming included: LiteLLM calls it once with the whole
    stream's response and usage): `RecordCall` with the usage LiteLLM reports (OpenAI shape: cached
    prompt tokens split out), the latency and time to first token, settling the reservation.
  * on failure (`async_log_failure_event`): `RecordCall` with OUTCOME_ERROR, the exception's class
    and status code, zero usage: the reservation is released at its settlement.

The subject: `metadata["meter_subject"]` when the caller sets it; else from what the proxy attaches
to the request, `team:<team id>/user:<user id>` (either part alone when only one is known), else
`key:<key alias or hash prefix>`; for SDK calls the `user` argument gives `user:<user>`; else
`default_subject`. Labels: `litellm_model_group` (the proxy's model name) when there is one.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import os
from typing import Any

import litellm
from litellm.integrations.custom_logger import CustomLogger

from meter._async import AsyncMeterClient
from meter.errors import MeterUnavailable, QuotaExceeded
from meter.usage_extract import openai_usage
from meter.v1 import common_pb2

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 10_000  # calls reserved but not yet recorded (LiteLLM always ends a call with one event)


class MeterCallback(CustomLogger):
    def __init__(
        self,
        address: str | None = None,
        api_key: str | None = None,
        *,
        client: AsyncMeterClient | None = None,
        default_subject: str = "litellm",
        default_max_tokens: int = 1024,
        operation: str = "chat",
        client_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.address = address or os.environ.get("METER_ADDRESS", "127.0.0.1:50051")
        self.api_key = api_key or os.environ.get("METER_API_KEY", "")
        self.client = client  # made at first use otherwise: grpc.aio needs the event loop that uses it
        self.client_options = client_options or {}
        self.default_subject = default_subject
        self.default_max_tokens = default_max_tokens
        self.operation = operation
        self._in_flight: collections.OrderedDict[str, tuple[str, str, str, dict[str, str], str]] = (
            collections.OrderedDict()
        )

    def _client(self) -> AsyncMeterClient:
        if self.client is None:
            self.client = AsyncMeterClient(self.address, self.api_key, **self.client_options)
        return self.client

    # ---- what a call is --------------------------------------------------------------------------

    def subject(self, kwargs: dict) -> str:
        md = _metadata(kwargs)
        if md.get("meter_subject"):
            return str(md["meter_subject"])
        team, user = md.get("user_api_key_team_id"), md.get("user_api_key_user_id") or kwargs.get("user")
        parts = [f"team:{team}"] * bool(team) + [f"user:{user}"] * bool(user)
        if parts:
            return "/".join(parts)
        key = md.get("user_api_key_alias") or (md.get("user_api_key_hash") or md.get("user_api_key") or "")[:12]
        return f"key:{key}" if key else self.default_subject

    @staticmethod
    def provider_model(kwargs: dict) -> tuple[str, str]:
        model = str(kwargs.get("model") or "")
        provider = kwargs.get("custom_llm_provider") or ""
        try:
            model, provider, _, _ = litellm.get_llm_provider(model, custom_llm_provider=provider or None)
        except Exception:  # noqa: BLE001 - an unknown route still gets metered under its name
            provider, _, rest = model.partition("/") if "/" in model else ("", "", model)
            model = rest or model
        return str(provider), str(model)

    def estimate(self, kwargs: dict, model: str) -> tuple[int, int]:
        """(input tokens, max output tokens) of the request."""
        messages = kwargs.get("messages") or []
        try:
            prompt = litellm.token_counter(model=model, messages=messages)
        except Exception:  # noqa: BLE001 - odd content: about four characters a token
            prompt = sum(len(str(m.get("content", ""))) for m in messages if isinstance(m, dict)) // 4
        out = kwargs.get("max_completion_tokens") or kwargs.get("max_tokens") or self.default_max_tokens
        return int(prompt), int(out)

    # ---- the hooks -----------------------------------------------------------------------------------

    async def async_pre_call_deployment_hook(self, kwargs: dict, call_type) -> dict | None:
        if call_type is not None and getattr(call_type, "value", call_type) not in ("completion", "acompletion"):
            return None  # embeddings, images...: not metered by this hook
        call_id = str(kwargs.get("litellm_call_id") or "")
        if not call_id or call_id in self._in_flight:
            return None  # a retry of a call already reserved (the reservation id makes it idempotent anyway)
        subject = self.subject(kwargs)
        provider, model = self.provider_model(kwargs)
        labels = _labels(kwargs)
        input_tokens, max_output = self.estimate(kwargs, model)
        try:
            result = await self._client().reserve(
                subject, provider, model, operation=self.operation, labels=labels, reservation_id=call_id,
                estimate_tokens=input_tokens, max_output_tokens=max_output,
            )  # fmt: skip
        except QuotaExceeded as denied:
            headers = {"retry-after": str(max(1, round(denied.retry_after)))} if denied.retry_after else None
            raise litellm.RateLimitError(
                message=f"Meter: {denied} (subject {subject})",
                llm_provider=provider,
                model=model,
                response=_response_429(headers),
            ) from None
        except MeterUnavailable as exc:  # the client's failure policy said no
            raise litellm.ServiceUnavailableError(message=f"Meter: {exc}", llm_provider=provider, model=model) from None
        self._in_flight[call_id] = (subject, provider, model, labels, result.reservation_id)
        while len(self._in_flight) > MAX_IN_FLIGHT:
            self._in_flight.popitem(last=False)
        return None

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time) -> None:
        await self._record(kwargs, response_obj, start_time, end_time, error=None)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time) -> None:
        await self._record(kwargs, None, start_time, end_time, error=kwargs.get("exception"))

    async def _record(self, kwargs, response, start_time, end_time, error) -> None:
        call_id = str(kwargs.get("litellm_call_id") or "")
        entry = self._in_flight.pop(call_id, None)
        if entry is None:
            return  # not reserved by us (denied, another call type, or before we were installed)
        subject, provider, model, labels, reservation_id = entry
        fields: dict[str, Any] = {
            "call_id": call_id,
            "reservation_id": reservation_id,
            "operation": self.operation,
            "labels": labels,
            "latency": _seconds(start_time, end_time),
        }
        first = kwargs.get("completion_start_time")
        if kwargs.get("stream") and isinstance(first, dt.datetime) and isinstance(start_time, dt.datetime):
            fields["time_to_first_token"] = max(0.0, (first - start_time).total_seconds())
        if error is not None:
            code = getattr(error, "status_code", None) or getattr(error, "code", None)
            fields["error_code"] = type(error).__name__ + (f":{code}" if code else "")
            fields["error_message"] = str(error)[:1024] or type(error).__name__
            fields["usage"] = common_pb2.Usage()
        else:
            fields["usage"] = _usage(kwargs, response)
        try:
            await self._client().record(subject, provider, model, **fields)
        except Exception as exc:  # noqa: BLE001 - never fail the LLM call over its bookkeeping
            log.warning("meter: recording LiteLLM call %s failed: %s", call_id, exc)


# ---- helpers ---------------------------------------------------------------------------------------


def _metadata(kwargs: dict) -> dict:
    """The request's metadata wherever this LiteLLM path put it (proxy requests carry the key's user,
    team and alias in it)."""
    out: dict = {}
    params = kwargs.get("litellm_params") or {}
    for md in (params.get("metadata"), kwargs.get("litellm_metadata"), kwargs.get("metadata")):
        if isinstance(md, dict):
            out.update({k: v for k, v in md.items() if v not in (None, "")})
    return out


def _labels(kwargs: dict) -> dict[str, str]:
    group = _metadata(kwargs).get("model_group")
    return {"litellm_model_group": str(group)[:128]} if group else {}


def _seconds(start, end) -> float | None:
    if isinstance(start, dt.datetime) and isinstance(end, dt.datetime):
        return max(0.0, (end - start).total_seconds())
    if isinstance(start, int | float) and isinstance(end, int | float):
        return max(0.0, float(end - start))
    return None


def _usage(kwargs: dict, response) -> common_pb2.Usage | None:
    """LiteLLM's usage (OpenAI shape for every provider); for a stream, the assembled response's."""
    for candidate in (kwargs.get("complete_streaming_response"), response):
        if candidate is not None and getattr(candidate, "usage", None) is not None:
            try:
                return openai_usage(candidate)
            except ValueError:
                pass
    slo = kwargs.get("standard_logging_object") or {}
    if slo.get("prompt_tokens") is not None:
        return common_pb2.Usage(
            input_tokens=int(slo["prompt_tokens"]), output_tokens=int(slo.get("completion_tokens") or 0)
        )
    return None  # no usage at all: Meter charges the reservation's estimate


def _response_429(headers: dict[str, str] | None):
    import httpx  # a dependency of litellm and openai

    return httpx.Response(
        429, headers=headers, request=httpx.Request("POST", "https://meter.invalid/v1/chat/completions")
    )


# For the proxy's config.yaml (`callbacks: meter.integrations.litellm.meter_callback`): configured
# from METER_ADDRESS and METER_API_KEY; its gRPC client is made inside the proxy's event loop.
meter_callback = MeterCallback()
