"""Frameworks, unchanged, against the gateway with nothing but a base URL and a key:
LangChain's ChatOpenAI (invoke, stream, tool calling) and LlamaIndex's OpenAILike."""

from __future__ import annotations

from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from llama_index.core.llms import ChatMessage
from llama_index.llms.openai_like import OpenAILike

from tests.sdk.harness import API_KEY, LiveGateway


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"sunny in {city}"


def _chat(gateway: LiveGateway, model: str) -> ChatOpenAI:
    return ChatOpenAI(base_url=f"{gateway.url}/v1", api_key=API_KEY, model=model, max_retries=0)


def test_langchain_invoke(gateway: LiveGateway) -> None:
    answer = _chat(gateway, "mock-fast").invoke("Say hello")
    assert isinstance(answer, AIMessage) and answer.content
    assert answer.response_metadata["model_name"] == "mock-fast"
    assert answer.usage_metadata is not None and answer.usage_metadata["total_tokens"] > 0


def test_langchain_stream(gateway: LiveGateway) -> None:
    chat = _chat(gateway, "mock-fast")
    chunks = list(chat.stream("Stream a reply"))
    assert len(chunks) > 2 and all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "".join(str(c.content) for c in chunks) == chat.invoke("Stream a reply").content
    assert list(_chat(gateway, "smart").stream("Through a route"))  # a route name works as a model


def test_langchain_tool_calling(gateway: LiveGateway) -> None:
    llm = _chat(gateway, "mock-smart").bind_tools([get_weather], tool_choice="get_weather")
    answer = llm.invoke("What is the weather in Paris?")
    assert len(answer.tool_calls) == 1
    call = answer.tool_calls[0]
    assert call["name"] == "get_weather" and isinstance(call["args"]["city"], str)
    assert get_weather.invoke(call["args"]).startswith("sunny in")


def test_llamaindex_openai_like(gateway: LiveGateway) -> None:
    llm = OpenAILike(
        model="mock-fast", api_base=f"{gateway.url}/v1", api_key=API_KEY, is_chat_model=True, max_retries=0
    )
    done = llm.complete("Say hello")
    assert done.text
    reply = llm.chat([ChatMessage(role="user", content="Say hello")])
    assert reply.message.content == done.text  # the mock is deterministic
    pieces = [r.delta for r in llm.stream_complete("Say hello")]
    assert len(pieces) > 1 and "".join(p or "" for p in pieces) == done.text
