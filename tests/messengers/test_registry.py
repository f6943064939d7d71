"""The registry, and the contract every adapter module shares."""

from __future__ import annotations

from types import ModuleType

import pytest

from acquisition import messengers
from acquisition.errors import Invalid
from acquisition.messengers import instagram, messenger, telegram, viber, vk, whatsapp
from acquisition.messengers import max as max_bot

MODULES: list[ModuleType] = [telegram, whatsapp, viber, messenger, instagram, vk, max_bot]
FUNCTIONS = (
    "normalize_handle",
    "deep_link",
    "verify",
    "handshake",
    "parse",
    "welcome_response",
    "webhook_setup",
)


def test_registry_names_every_supported_messenger_in_order() -> None:
    assert messengers.NAMES == (
        "telegram",
        "whatsapp",
        "viber",
        "messenger",
        "instagram",
        "vk",
        "max",
    )
    assert [messengers.get(name) for name in messengers.NAMES] == MODULES


@pytest.mark.parametrize("name", ["Telegram", "skype", "", "signal", " telegram"])
def test_registry_refuses_an_unsupported_messenger_naming_the_field(name: str) -> None:
    with pytest.raises(Invalid) as caught:
        messengers.get(name)
    assert caught.value.field == "messenger"
    assert "telegram" in caught.value.message


@pytest.mark.parametrize(
    ("name", "label", "phone_only", "has_payload", "credentials"),
    [
        ("telegram", "Telegram", False, True, ("secret",)),
        ("whatsapp", "WhatsApp", False, False, ("app_secret", "verify_token")),
        ("viber", "Viber", True, True, ("auth_token",)),
        ("messenger", "Facebook Messenger", False, True, ("app_secret", "verify_token")),
        ("instagram", "Instagram", True, True, ("app_secret", "verify_token")),
        ("vk", "VK", False, True, ("secret", "confirmation")),
        ("max", "MAX", True, True, ("secret",)),
    ],
)
def test_each_adapter_declares_its_constants(
    name: str, label: str, phone_only: bool, has_payload: bool, credentials: tuple[str, ...]
) -> None:
    adapter = messengers.get(name)
    assert (name, label) == (adapter.NAME, adapter.LABEL)
    assert (phone_only, has_payload) == (adapter.PHONE_ONLY, adapter.HAS_PAYLOAD)
    assert credentials == adapter.CREDENTIALS


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.NAME)
def test_each_adapter_has_every_function_of_the_interface(module: ModuleType) -> None:
    for function in FUNCTIONS:
        assert callable(getattr(module, function)), function
        assert getattr(module, function).__module__ == module.__name__


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.NAME)
@pytest.mark.parametrize(
    "body",
    [b"", b" ", b"{", b"null", b"[]", b"[{}]", b'"x"', b"1", b"true", b"\xc3\x28", b"{" * 10_000],
)
def test_each_adapter_rejects_a_body_that_is_not_a_json_object(
    module: ModuleType, body: bytes
) -> None:
    with pytest.raises(Invalid) as caught:
        module.parse(body)
    assert caught.value.field == "body"


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.NAME)
def test_each_adapter_rejects_an_empty_object(module: ModuleType) -> None:
    with pytest.raises(Invalid):
        module.parse(b"{}")


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.NAME)
def test_each_adapter_fails_verification_without_credentials_or_headers(
    module: ModuleType,
) -> None:
    assert module.verify({}, {}, b"{}") is False
    assert module.verify({name: "" for name in module.CREDENTIALS}, {}, b'{"secret": ""}') is False


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.NAME)
def test_each_adapter_has_no_handshake_for_an_empty_request(module: ModuleType) -> None:
    assert module.handshake({}, {}, None) is None
    assert module.handshake({}, {}, b"") is None


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.NAME)
def test_each_adapter_setup_text_names_the_url_without_credentials(module: ModuleType) -> None:
    setup = module.webhook_setup("https://acq.example/hooks/x/1", {})
    assert "https://acq.example/hooks/x/1" in setup
    assert len(setup) < 600
