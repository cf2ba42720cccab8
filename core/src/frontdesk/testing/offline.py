"""`OfflineModel`: answers without a key or a network, from the agent's own config.

It is no language model: it classifies by keywords and replies with templates, so that
`frontdesk demo` and `frontdesk chat` run anywhere and show the engine's decisions
(intent, confidence, proceed / clarify / hand off, mode changes). Every reply it writes
starts with `[offline]`, so that nobody mistakes it for an agent's real answer.

- Intents come from the intent detector's system prompt: each line `- name: description`
  (under an `INTENTS` heading, if it has one) is an intent, and its quoted examples
  ("hola", "I'll take it") and the words of its name are its keywords. This is the
  convention docs/engine.md ("Offline") and the README's agent package document for
  authors: a prompt that names its intents otherwise gets `other` for every message. A message that matches an example is classified with confidence 0.9;
  one that shares words with an intent's name or description gets the intent with most
  of them and 0.7 (the re-analyse band of the usual thresholds: a second look with the same
  answer makes it a clarify); one that matches nothing is `other` with 0.5 (clarify), and
  one with no words at all (emojis, punctuation) `other` with 0.2 (a hand-off).
- A message that asks for a person is handed off, whatever else it says: the agent's
  intent for that (the one whose name says `human` or `person`, such as `wants_human`)
  with confidence 0, below every clarify threshold, as the offline model cannot serve it.
  Its keywords are the words of that intent's name and description ("a person, an agent,
  the owner") and a few fixed ones (`persona`, `humano`, `human`, `person`, ...).
- The orchestrator moves to the allowed mode whose name shares most words with the intent
  (`provides_delivery_data` -> `collecting_delivery_data`), or stays.

    model = OfflineModel(agent_registry.list())
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from attrs import frozen

from ..config import AgentConfig
from ..engine.client import ModelRequest, ModelResponse, Usage
from ..errors import EngineError

__all__ = ["OFFLINE_LABEL", "OfflineModel"]

OFFLINE_LABEL = "[offline]"
"""How every reply of the offline model starts."""

_BULLET = re.compile(r"^\s*-\s+([a-z][a-z0-9_]*):\s*(.*)$")
_QUOTED = re.compile(r"\"([^\"]{2,60})\"")
_WORD = re.compile(r"[a-z0-9]+")
# Words every description has: they tell intents apart no better than chance.
_COMMON = frozenset(
    {
        "about",
        "what",
        "whether",
        "with",
        "that",
        "this",
        "they",
        "their",
        "asks",
        "says",
        "anything",
        "other",
        "message",
        "customer",
        "assistant",
        "something",
    }
)


# Words that ask for a person in the languages the bundled agents speak; an agent's own
# human intent adds the words of its description.
_HUMAN_WORDS = frozenset(
    _w[:5]
    for _w in ("persona", "humano", "human", "person", "people", "operador", "operator", "agente")
)
_HUMAN_NAME = re.compile(r"human|person")


@frozen
class _Intent:
    name: str
    examples: tuple[str, ...]
    words: frozenset[str]  # from its name and description


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _stems(text: str) -> frozenset[str]:
    """Words of 3+ letters cut to 5, so that `question` meets `questions`."""
    return frozenset(w[:5] for w in _WORD.findall(_fold(text.replace("_", " "))) if len(w) > 2)


def _intents(prompt: str) -> tuple[_Intent, ...]:
    """The `- name: description` bullets of a prompt, with their quoted examples."""
    lines = prompt.splitlines()
    # A prompt with an INTENTS heading lists them under it, up to the next heading.
    heading = next((i for i, line in enumerate(lines) if line.startswith("INTENTS")), None)
    if heading is not None:
        end = next(
            (i for i in range(heading + 1, len(lines)) if lines[i].strip() and lines[i].isupper()),
            len(lines),
        )
        lines = lines[heading + 1 : end]
    found: list[tuple[str, list[str]]] = []
    for line in lines:
        bullet = _BULLET.match(line)
        if bullet:
            found.append((bullet.group(1), [bullet.group(2)]))
        elif found and line.startswith("  ") and line.strip():
            found[-1][1].append(line.strip())  # a description continued on the next line
        elif not line.strip() and found:
            found.append(("", []))  # a blank line ends a description
    return tuple(
        _Intent(
            name=name,
            examples=tuple(_fold(q) for q in _QUOTED.findall(" ".join(text))),
            words=_stems(name) | _stems(" ".join(text)) - _COMMON,
        )
        for name, text in found
        if name
    )


def _section(text: str, title: str) -> str:
    """The lines after `title:` up to the next blank line, in the engine's context."""
    start = text.find(f"{title}:")
    if start < 0:
        return ""
    body = text[start + len(title) + 1 :].lstrip("\n")
    return body.split("\n\n", 1)[0]


def _line(text: str, title: str) -> str:
    start = text.find(f"{title}: ")
    return text[start + len(title) + 2 :].split("\n", 1)[0] if start >= 0 else ""


class OfflineModel:
    """A `ModelClient` for the given agents that needs no key (see the module docstring)."""

    def __init__(self, agents: Iterable[AgentConfig]) -> None:
        self._by_prompt: dict[str, AgentConfig] = {}
        self._intents: dict[str, tuple[_Intent, ...]] = {}
        self._human: dict[str, tuple[str, frozenset[str]]] = {}
        for agent in agents:
            self._by_prompt[agent.intent_detector.system_prompt] = agent
            self._by_prompt[agent.orchestrator.system_prompt] = agent
            intents = _intents(agent.intent_detector.system_prompt)
            self._intents[agent.id] = intents
            human = next((i for i in intents if _HUMAN_NAME.search(i.name)), None)
            if human is None:
                self._human[agent.id] = ("other", _HUMAN_WORDS)
            else:
                own = {word for word in human.words if len(word) > 3} - {"wants"}
                self._human[agent.id] = (human.name, _HUMAN_WORDS | own)

    def __repr__(self) -> str:
        return f"<OfflineModel agents={sorted(self._intents)!r}>"

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Answer as the engine asked: an intent, an orchestrator answer or a question."""
        agent = self._by_prompt.get(request.system)
        if agent is None:
            # A setup error, not a failing model: the engine raises it without retrying,
            # recording or handing anyone off.
            raise EngineError(
                "OfflineModel was not given the agent whose system prompt this request has "
                f"(model {request.model!r}); build it with the agents it serves: "
                "OfflineModel(agent_registry.list())"
            )
        context = request.messages[0].content if request.messages else ""
        title = (request.output_schema or {}).get("title")
        if title == "intent":
            answer: Any = self._classify(agent, context)
        elif title == "clarify":
            answer = {"reply": self._clarify(agent, context)}
        else:
            answer = self._orchestrate(agent, context)
        text = json.dumps(answer, ensure_ascii=False)
        words = sum(len(m.content.split()) for m in request.messages)
        usage = Usage(words + len(request.system.split()), len(text.split()))
        return ModelResponse(text=text, usage=usage, model="offline")

    def _classify(self, agent: AgentConfig, context: str) -> Mapping[str, Any]:
        section = _section(context, "Classify the latest message(s)")
        message = _fold(re.sub(r"(?m)^\[\w+\] ?", "", section))
        stems = _stems(message)
        if not stems:  # only emojis, stickers or punctuation: nothing to go on
            return {"intent": "other", "confidence": 0.2, "fields": {}}
        human, asks_for_a_person = self._human[agent.id]
        if stems & asks_for_a_person:
            return {"intent": human, "confidence": 0.0, "fields": {}}
        intents = self._intents[agent.id]
        for intent in intents:
            if any(re.search(rf"\b{re.escape(e)}\b", message) for e in intent.examples):
                return {"intent": intent.name, "confidence": 0.9, "fields": {}}
        overlap, name = max(((len(i.words & stems), i.name) for i in intents), default=(0, ""))
        if overlap:
            return {"intent": name, "confidence": 0.7, "fields": {}}
        return {"intent": "other", "confidence": 0.5, "fields": {}}

    def _orchestrate(self, agent: AgentConfig, context: str) -> Mapping[str, Any]:
        mode = _line(context, "Current mode")
        intent = _line(context, "Detected intent").split(" (", 1)[0]
        wanted = _stems(intent)
        choices = agent.states.allowed_from(mode)
        scored = sorted(((len(_stems(m) & wanted), m) for m in choices), reverse=True)
        next_mode = scored[0][1] if scored and scored[0][0] else mode
        step = (
            f"next step: {next_mode.replace('_', ' ')}."
            if next_mode != mode
            else f"we stay in {mode.replace('_', ' ')}."
        )
        reply = f"{OFFLINE_LABEL} {agent.name}: understood {intent.replace('_', ' ')}; {step}"
        return {"reply": reply, "next_mode": next_mode, "captured_data": {}, "tool_calls": []}

    def _clarify(self, agent: AgentConfig, context: str) -> str:
        guess = re.search(r"best guess is '([^']+)'", context)
        about = guess.group(1).replace("_", " ") if guess else "that"
        return (
            f"{OFFLINE_LABEL} {agent.name}: sorry, do you mean {about}? Could you say a bit more?"
        )
