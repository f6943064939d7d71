"""Placements: the concrete spots that carry a link (billboard #12, flyer batch B, site footer)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from acquisition import fields
from acquisition.errors import Invalid
from acquisition.models import Placement

KINDS = ("web", "ad", "social", "print", "outdoor", "email", "widget", "other")


@dataclass(frozen=True)
class PlacementSpec:
    name: str
    kind: str
    address: str | None
    cost: Decimal | None


def parse(data: object, prefix: str = "placement.") -> PlacementSpec:
    body = fields.obj(data, prefix.rstrip("."))
    problems = fields.Problems()
    fields.unknown_keys(body, {"name", "kind", "address", "cost"}, prefix, problems)
    name = problems.take(fields.text, body, "name", max_length=200, prefix=prefix, required=True)
    kind = problems.take(fields.choice, body, "kind", KINDS, prefix=prefix, default="other")
    address = problems.take(fields.text, body, "address", max_length=300, prefix=prefix)
    cost = problems.take(fields.money, body, "cost", prefix=prefix)
    problems.check()
    assert name is not None and kind is not None
    return PlacementSpec(name, kind, address, cost)


def create(session: Session, spec: PlacementSpec, campaign: str | None) -> Placement:
    placement = Placement(
        name=spec.name, kind=spec.kind, address=spec.address, cost=spec.cost, campaign=campaign
    )
    session.add(placement)
    return placement


def get(session: Session, placement_id: int, field: str = "placement_id") -> Placement:
    placement = session.get(Placement, placement_id)
    if placement is None:
        raise Invalid(f"no placement with id {placement_id}", field=field)
    return placement


def list_all(session: Session, campaign: str | None = None) -> list[Placement]:
    query = select(Placement).order_by(Placement.id.desc())
    if campaign is not None:
        query = query.where(Placement.campaign == campaign)
    return list(session.scalars(query))


def public(placement: Placement) -> dict[str, Any]:
    return {
        "id": placement.id,
        "name": placement.name,
        "kind": placement.kind,
        "address": placement.address,
        "cost": str(placement.cost) if placement.cost is not None else None,
        "campaign": placement.campaign,
    }
