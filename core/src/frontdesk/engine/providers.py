"""Model providers: which installed package serves a model id.

A provider is a module in the `frontdesk.models` entry-point group implementing the
`get_model_client` hook; frontdesk ships one for the `llm` library
(`pip install 'frontdesk[llm]'`). Providers are loaded the first time a model is needed
(provider libraries are heavy, and listing agents must not import them), each in
isolation: one that fails to import is logged and skipped.

    providers = ModelProviders()
    client = providers.resolve("gpt-4o-mini")  # ModelNotFoundError if nobody claims it
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from importlib.metadata import entry_points

import pluggy

from .. import hookspecs
from ..errors import EngineError, ModelNotFoundError
from . import llm_adapter
from .client import ModelClient

__all__ = ["ENTRY_POINT_GROUP", "ModelProviders"]

ENTRY_POINT_GROUP = "frontdesk.models"

logger = logging.getLogger(__name__)


class ModelProviders:
    """The model providers of one engine: installed ones, and ones registered in code.

    >>> providers = ModelProviders(autodiscover=False)
    >>> providers.names
    ()
    """

    def __init__(self, *, autodiscover: bool = True) -> None:
        self._manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._manager.add_hookspecs(hookspecs)
        self._discovered = not autodiscover
        self._lock = threading.Lock()
        self._clients: dict[str, ModelClient] = {}

    @property
    def names(self) -> tuple[str, ...]:
        """The providers that will be asked, in registration order."""
        self._discover()
        return tuple(name for name, _ in self._manager.list_name_plugin())

    def register(self, provider: object, *, name: str | None = None) -> None:
        """Add a provider from code (an object or module with a `get_model_client` hookimpl).

        Providers registered later are asked first, as pluggy calls the last one first.
        """
        self._manager.register(provider, name=name)
        with self._lock:
            self._clients.clear()

    def resolve(self, model_id: str) -> ModelClient:
        """The client that serves `model_id`; `ModelNotFoundError` says what to install."""
        with self._lock:
            client = self._clients.get(model_id)
        if client is not None:
            return client
        self._discover()
        found = self._manager.hook.get_model_client(model_id=model_id)
        if found is None:
            raise ModelNotFoundError(model_id, self.names, llm_installed=self._llm_asked())
        if not isinstance(found, ModelClient):
            raise EngineError(
                f"a model provider returned {type(found).__name__} for {model_id!r}; "
                "get_model_client must return a ModelClient or None: fix the provider, or "
                f"uninstall it (providers asked: {', '.join(self.names) or 'none'})"
            )
        with self._lock:
            self._clients[model_id] = found
        return found

    def _llm_asked(self) -> bool:
        """Whether `llm` was asked: its provider is registered and the library installed.

        Then a model nobody claims is an id `llm` does not know, not a missing install.
        """
        if not self._manager.is_registered(llm_adapter):
            return False
        return importlib.util.find_spec("llm") is not None

    def _discover(self) -> None:
        with self._lock:
            if self._discovered:
                return
            self._discovered = True
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                try:
                    self._manager.register(ep.load(), name=ep.name)
                except Exception as exc:  # noqa: BLE001 - one broken provider must not hide the others
                    logger.warning(
                        "model provider %s (%s) failed to load: %s", ep.name, ep.value, exc
                    )
