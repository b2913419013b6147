"""Real SDK response objects, built locally (no network): what the OpenAI, Anthropic and Google Gen AI
SDKs hand back to callers."""

from __future__ import annotations

import anthropic.types as anthropic_types
from google.genai import types as genai_types
from openai.types.chat import ChatCompletion, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.completion_usage import CompletionTokensDetails, CompletionUsage, PromptTokensDetails
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails, ResponseUsage


def openai_chat(prompt: int, completion: int, cached: int = 0, reasoning: int = 0, model: str = "gpt-4.1"):
    return ChatCompletion(
        id="chatcmpl-test",
        object="chat.completion",
        created=1_770_000_000,
        model=model,
        choices=[Choice(index=0, finish_reason="stop", message=ChatCompletionMessage(role="assistant", content="ok"))],
        usage=CompletionUsage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
            completion_tokens_details=CompletionTokensDetails(reasoning_tokens=reasoning),
        ),
    )


def openai_responses_usage(input_tokens: int, output: int, cached: int, reasoning: int, written: int = 0):
    return ResponseUsage(
        input_tokens=input_tokens,
        input_tokens_details=InputTokensDetails(cached_tokens=cached, cache_write_tokens=written),
        output_tokens=output,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=reasoning),
        total_tokens=input_tokens + output,
    )


def anthropic_message(input_tokens: int, output: int, cache_write: int = 0, cache_read: int = 0):
    return anthropic_types.Message(
        id="msg_test",
        type="message",
        role="assistant",
        model="claude-sonnet-4-5",
        content=[anthropic_types.TextBlock(type="text", text="ok")],
        stop_reason="end_turn",
        stop_sequence=None,
        usage=anthropic_types.Usage(
            input_tokens=input_tokens,
            output_tokens=output,
            cache_creation_input_tokens=cache_write,
            cache_read_input_tokens=cache_read,
        ),
    )


def gemini_response(prompt: int, candidates: int, cached: int = 0, thoughts: int = 0, tool_prompt: int | None = None):
    return genai_types.GenerateContentResponse(
        usage_metadata=genai_types.GenerateContentResponseUsageMetadata(
            prompt_token_count=prompt,
            candidates_token_count=candidates,
            cached_content_token_count=cached,
            thoughts_token_count=thoughts,
            tool_use_prompt_token_count=tool_prompt,
            total_token_count=prompt + candidates + thoughts + (tool_prompt or 0),
        )
    )


def openai_final_chunk_without_usage(model: str = "gpt-4.1"):
    """The last chunk of a Chat Completions stream made without stream_options={"include_usage": True}."""
    from openai.types.chat import ChatCompletionChunk
    from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
    from openai.types.chat.chat_completion_chunk import ChoiceDelta

    return ChatCompletionChunk(
        id="chatcmpl-stream",
        object="chat.completion.chunk",
        created=1_770_000_000,
        model=model,
        choices=[ChunkChoice(index=0, delta=ChoiceDelta(), finish_reason="stop")],
        usage=None,
    )
