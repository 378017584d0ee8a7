"""Alerts: active alerts and alert rules (docs/alerts.md; wiring in docs/monitoring.md).

* ``GET /v1/alerts[?model=&state=]`` — pending and firing alerts (``state`` repeats or takes
  ``pending,firing,resolved``), firing first, then by severity.
* ``GET /v1/alerts/rules`` · ``POST /v1/alerts/rules`` (201; 409 when the name is taken) ·
  ``GET /v1/alerts/rules/{name}`` · ``PUT /v1/alerts/rules/{name}`` (replace; 404 when there is
  none) · ``DELETE /v1/alerts/rules/{name}`` — rule bodies as in docs/alerts.md; invalid ones
  are 400 with ``field`` naming the part.

Thin: everything is the :class:`~sibyl.service._alerts.AlertService`'s engine; store calls run
in the thread pool.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from sibyl.api.codecs._common import loads
from sibyl.api.routes._deps import blocking, container
from sibyl.api.routes.experiments import ErrorBody
from sibyl.errors import InvalidInputError, SibylError
from sibyl.monitoring.alerts import AlertState, Rule
from sibyl.service._alerts import AlertService

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Invalid rule; `field` names the part."},
    404: {"model": ErrorBody, "description": "No rule of that name."},
    409: {"model": ErrorBody, "description": "A rule of that name exists."},
    503: {"model": ErrorBody, "description": "The store is unreachable."},
}
router = APIRouter(prefix="/v1/alerts", tags=["alerts"], responses=_ERRORS)
_STATES = {s.value: s for s in (AlertState.PENDING, AlertState.FIRING, AlertState.RESOLVED)}


def _alerts(request: Request) -> AlertService:
    service = container(request).alerts
    if service is None:
        raise SibylError("alerts are not wired on this server")
    return service


@router.get("", summary="Active alerts")
async def list_alerts(
    request: Request,
    model: str | None = None,
    state: Annotated[list[str] | None, Query()] = None,
) -> dict[str, Any]:
    """Pending and firing alerts (or those in ``state``), optionally of one model."""
    service = _alerts(request)
    states = _states(state)
    alerts = await blocking(service.active_alerts, model=model, states=states)
    return {"alerts": [a.to_dict() for a in alerts]}


@router.get("/rules", summary="Alert rules")
async def list_rules(request: Request) -> dict[str, Any]:
    """Every rule, enabled or not, by name."""
    rules = await blocking(_alerts(request).engine.list_rules)
    return {"rules": [r.to_dict() for r in rules]}


@router.post("/rules", status_code=201, summary="Create an alert rule")
async def create_rule(request: Request) -> dict[str, Any]:
    """A new rule; its metric must be one this server answers."""
    rule = Rule.from_dict(loads(await request.body()))
    created = await blocking(_alerts(request).engine.create_rule, rule)
    return created.to_dict()


@router.get("/rules/{name}", summary="One alert rule")
async def get_rule(name: str, request: Request) -> dict[str, Any]:
    """The rule called ``name``."""
    rule = await blocking(_alerts(request).engine.get_rule, name)
    return rule.to_dict()


@router.put("/rules/{name}", summary="Replace an alert rule")
async def replace_rule(name: str, request: Request) -> dict[str, Any]:
    """Replace the rule called ``name`` (the body's ``name`` may be left out)."""
    body = loads(await request.body())
    if isinstance(body, dict) and body.setdefault("name", name) != name:
        raise InvalidInputError(
            f"The body names rule '{body['name']}' but the path names '{name}'; rename by "
            "deleting and creating",
            field="name",
        )
    replaced = await blocking(_alerts(request).engine.replace_rule, Rule.from_dict(body))
    return replaced.to_dict()


@router.delete("/rules/{name}", summary="Delete an alert rule")
async def delete_rule(name: str, request: Request) -> dict[str, Any]:
    """Delete a rule; its firing alerts resolve (announced once) at the next evaluation."""
    await blocking(_alerts(request).engine.delete_rule, name)
    return {"deleted": name}


def _states(values: list[str] | None) -> list[AlertState] | None:
    if not values:
        return None
    out = []
    for part in (p.strip().lower() for v in values for p in v.split(",")):
        if part not in _STATES:
            raise InvalidInputError(
                f"Unknown alert state '{part}'; use {', '.join(_STATES)}", field="state"
            )
        out.append(_STATES[part])
    return out
