"""The agent engine: runs an installed agent on each message, on pluggable models.

- `client`: the `ModelClient` interface models implement (`ModelRequest`,
  `ModelResponse`, `Usage`);
- `providers`: which installed package serves a model id (`get_model_client` hook);
- `llm_adapter`: every model of simonw's `llm` library (`frontdesk[llm]`);
- `run`: one run's decision (intent, thresholds, orchestrator, tools), without storage;
- `tracing`: OpenTelemetry spans (GenAI semantic conventions);
- `engine`: `Engine`, which runs each inbound message through the pipeline and `run`.
"""

from .client import ModelClient, ModelMessage, ModelRequest, ModelResponse, Usage
from .engine import Engine, RunOutcome
from .providers import ModelProviders
from .run import Decision, EngineSettings, RunResult, RunView, run_agent
from .tracing import Tracing

__all__ = [
    "Decision",
    "Engine",
    "EngineSettings",
    "ModelClient",
    "ModelMessage",
    "ModelProviders",
    "ModelRequest",
    "ModelResponse",
    "RunOutcome",
    "RunResult",
    "RunView",
    "Tracing",
    "Usage",
    "run_agent",
]
