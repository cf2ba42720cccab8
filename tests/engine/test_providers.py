"""Model providers: who serves a model id, and the error when nobody does."""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint

import pytest

from frontdesk import EngineError, ModelNotFoundError, ModelRequest, ModelResponse, hookimpl
from frontdesk.engine import ModelProviders, providers
from frontdesk.testing.scripted import ScriptedModel


class Provider:
    """Serves the model ids it was built with."""

    def __init__(self, *model_ids: str) -> None:
        self.model = ScriptedModel(lambda request: ModelResponse("ok", model=request.model))
        self.model_ids = model_ids

    @hookimpl
    def get_model_client(self, model_id: str) -> ScriptedModel | None:
        return self.model if model_id in self.model_ids else None


def test_an_id_llm_does_not_know_points_at_llm_models_not_at_installing_it() -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        ModelProviders().resolve("claude-no-such-model")

    error = caught.value
    assert error.model_id == "claude-no-such-model"
    assert "llm" in error.providers
    assert error.llm_installed is True
    assert "the llm library does not know this id" in str(error)
    assert "`llm models`" in str(error)
    assert "llm-anthropic" in str(error)
    assert "pip install" not in str(error)


def test_with_no_provider_installed_it_says_what_to_install() -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        ModelProviders(autodiscover=False).resolve("gpt-4o-mini")

    error = caught.value
    assert error.llm_installed is False
    assert "pip install 'frontdesk[llm]'" in str(error)
    assert "llm-anthropic" in str(error)
    assert "OfflineModel" in str(error)
    cli = error.with_offline_hint("or use --model offline")
    assert (cli.model_id, cli.providers, cli.llm_installed) == ("gpt-4o-mini", (), False)
    assert str(cli).endswith("or use --model offline.")
    assert "OfflineModel" not in str(cli)


def test_a_provider_registered_in_code_serves_its_models() -> None:
    models = ModelProviders(autodiscover=False)
    provider = Provider("house-model")
    models.register(provider, name="house")

    assert models.resolve("house-model") is provider.model
    assert models.names == ("house",)
    with pytest.raises(ModelNotFoundError, match="asked: house"):
        models.resolve("other-model")


def test_the_provider_registered_last_is_asked_first() -> None:
    models = ModelProviders(autodiscover=False)
    first, second = Provider("m"), Provider("m")
    models.register(first, name="first")
    models.register(second, name="second")

    assert models.resolve("m") is second.model


def test_a_provider_must_return_a_model_client() -> None:
    class Wrong:
        @hookimpl
        def get_model_client(self, model_id: str) -> object:
            return "not a client"

    models = ModelProviders(autodiscover=False)
    models.register(Wrong(), name="wrong")
    with pytest.raises(EngineError, match="must return a ModelClient or None: fix the provider"):
        models.resolve("m")


async def test_a_resolved_client_answers() -> None:
    models = ModelProviders(autodiscover=False)
    models.register(Provider("m"), name="p")
    response = await models.resolve("m").complete(ModelRequest(model="m", system="s", messages=[]))
    assert response.text == "ok"


def test_a_provider_that_fails_to_load_is_skipped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broken = EntryPoint(
        name="broken", value="frontdesk_no_such_module_anywhere", group="frontdesk.models"
    )
    real = providers.entry_points(group=providers.ENTRY_POINT_GROUP)
    monkeypatch.setattr(providers, "entry_points", lambda group: [broken, *real])

    with caplog.at_level(logging.WARNING):
        models = ModelProviders()
        assert models.names == ("llm",)
    assert "model provider broken" in caplog.text
