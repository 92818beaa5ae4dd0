"""Every asset precoro-assets defines names its owners (PRECORO_ASSET_OWNERS) and carries its kinds and domain."""

from __future__ import annotations

import pytest

from precoro_assets import settings
from precoro_assets.definitions import build_definitions

pytestmark = pytest.mark.usefixtures("configured_account")


def asset_nodes(monkeypatch, owners: str | None):
    if owners is None:
        monkeypatch.delenv("PRECORO_ASSET_OWNERS", raising=False)
    else:
        monkeypatch.setenv("PRECORO_ASSET_OWNERS", owners)
    graph = build_definitions(settings.load()).resolve_asset_graph()
    return [graph.get(key) for key in graph.get_all_asset_keys() if not graph.get(key).is_external]


def test_every_asset_has_owners_kinds_and_a_domain(monkeypatch):
    nodes = asset_nodes(monkeypatch, None)
    assert nodes and all(node.owners == ["team:finance_integration"] for node in nodes)
    assert all(node.tags.get("domain") == "procurement" for node in nodes)
    assert all(any(tag.startswith("dagster/kind/") for tag in node.tags) for node in nodes)

    owned = asset_nodes(monkeypatch, "ap-team@example.com, team:data_platform")
    assert all(node.owners == ["ap-team@example.com", "team:data_platform"] for node in owned)


def test_an_owner_that_is_neither_an_email_nor_a_team_is_a_one_line_settings_error(monkeypatch):
    monkeypatch.setenv("PRECORO_ASSET_OWNERS", "finance")
    with pytest.raises(ValueError, match="PRECORO_ASSET_OWNERS holds e-mail addresses or team:names"):
        settings.load()
