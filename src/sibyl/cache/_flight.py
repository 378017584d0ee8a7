"""Single flight: identical in-flight keys are looked up and computed once per event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from sibyl.cache._types import Compute

Lookup = Callable[[list[str]], Awaitable[list[bytes | None]]]
SyncLookup = Callable[[list[str]], list[bytes | None]]
Store = Callable[[list[tuple[str, bytes]]], Awaitable[None]]
_Flight = asyncio.Future[Sequence[bytes | None]]


class _AbandonedError(Exception):
    """The task leading a flight was cancelled; the tasks that joined it retry."""


class SingleFlight:
    """The keys being looked up or computed right now, each with the future of its flight.

    A call leads the flight of every key nobody is working on (look up, compute the misses, store
    them) and joins the flights of the others. A flight resolves to one value per key, ``None`` for
    a key that missed at lookup and moved on to a compute flight: a joiner seeing ``None``, or an
    abandoned flight, simply asks again. Use from event-loop threads; a flight of another loop is
    never joined.
    """

    def __init__(self) -> None:
        self._flights: dict[str, tuple[_Flight, int]] = {}

    async def run(
        self,
        keys: Sequence[str],
        lookup: Lookup,
        compute: Compute,
        store: Store,
        *,
        sync_lookup: SyncLookup | None = None,
    ) -> tuple[list[bytes], int]:
        """The value of every key, and how many unique keys came from others' flights.

        ``sync_lookup`` (a lookup that never yields to the loop, e.g. an in-process store) is
        used instead of ``lookup`` when given: nobody can join a lookup that does not yield, so
        only the compute of the misses takes off as a flight (two futures fewer a call).
        """
        found: dict[str, bytes] = {}
        pending = list(dict.fromkeys(keys))
        joined_total = 0
        while pending:
            own, joined = self._split(pending)
            if own and sync_lookup is not None:
                found.update(await self._lead_sync(own, sync_lookup, compute, store))
            elif own:
                found.update(await self._lead(own, lookup, compute, store))
            pending, n = await _join(joined, found)
            joined_total += n
        return [found[k] for k in keys], joined_total

    def _split(self, keys: list[str]) -> tuple[list[str], list[tuple[str, _Flight, int]]]:
        loop = asyncio.get_running_loop()
        own: list[str] = []
        joined: list[tuple[str, _Flight, int]] = []
        for key in keys:
            flight = self._flights.get(key)
            if flight is None or flight[0].get_loop() is not loop:
                own.append(key)
            else:
                joined.append((key, *flight))
        return own, joined

    async def _lead(
        self, own: list[str], lookup: Lookup, compute: Compute, store: Store
    ) -> dict[str, bytes]:
        lookup_flight = self._take_off(own)
        try:
            cached = await lookup(own)
        except BaseException:
            self._land(own, lookup_flight, error=_AbandonedError())
            raise
        missing = [k for k, v in zip(own, cached, strict=True) if v is None]
        compute_flight = self._take_off(missing) if missing else None
        self._land(own, lookup_flight, values=cached)
        found = {k: v for k, v in zip(own, cached, strict=True) if v is not None}
        if compute_flight is not None:
            computed = await self._compute(missing, compute, compute_flight)
            await store(list(zip(missing, computed, strict=True)))
            found.update(zip(missing, computed, strict=True))
        return found

    async def _lead_sync(
        self, own: list[str], lookup: SyncLookup, compute: Compute, store: Store
    ) -> dict[str, bytes]:
        cached = lookup(own)
        found = {k: v for k, v in zip(own, cached, strict=True) if v is not None}
        if len(found) < len(own):
            missing = [k for k, v in zip(own, cached, strict=True) if v is None]
            computed = await self._compute(missing, compute, self._take_off(missing))
            await store(list(zip(missing, computed, strict=True)))
            found.update(zip(missing, computed, strict=True))
        return found

    async def _compute(self, missing: list[str], compute: Compute, flight: _Flight) -> list[bytes]:
        try:
            computed = list(await compute(missing))
            if len(computed) != len(missing):
                raise ValueError(
                    f"compute returned {len(computed)} values for "
                    f"{len(missing)} keys; it must return one per key, in order"
                )
        except asyncio.CancelledError:
            self._land(missing, flight, error=_AbandonedError())
            raise
        except BaseException as exc:
            self._land(missing, flight, error=exc)
            raise
        self._land(missing, flight, values=computed)
        return computed

    def _take_off(self, keys: list[str]) -> _Flight:
        flight: _Flight = asyncio.get_running_loop().create_future()
        for i, key in enumerate(keys):
            self._flights[key] = (flight, i)
        return flight

    def _land(
        self,
        keys: list[str],
        flight: _Flight,
        *,
        values: Sequence[bytes | None] = (),
        error: BaseException | None = None,
    ) -> None:
        for key in keys:
            current = self._flights.get(key)
            if current is not None and current[0] is flight:
                del self._flights[key]
        if error is not None:
            flight.set_exception(error)
            flight.exception()  # retrieved: no "never retrieved" warning when nobody joined
        else:
            flight.set_result(values)

    def __len__(self) -> int:
        """Keys in flight."""
        return len(self._flights)


async def _join(
    joined: list[tuple[str, _Flight, int]], found: dict[str, bytes]
) -> tuple[list[str], int]:
    """Wait for the flights joined; returns the keys to ask again and how many were answered."""
    retry: list[str] = []
    answered = 0
    for key, flight, index in joined:
        try:
            # shield: a joiner being cancelled must not cancel the flight the others wait on
            values = flight.result() if flight.done() else await asyncio.shield(flight)
        except _AbandonedError:
            retry.append(key)
            continue
        value = values[index]
        if value is None:
            retry.append(key)
        else:
            found[key] = value
            answered += 1
    return retry, answered
