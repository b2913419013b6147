"""PriceBook's remembered choice (service/prices.py): a call priced between two versions' effective
times reuses the choice, and one at any other time gets the version in force then."""

from __future__ import annotations

import dataclasses
import datetime as dt

from meter_testing.services import PRICE, T0, TENANT
from meterd.service.prices import PriceBook

HOUR = dt.timedelta(hours=1)


async def test_the_version_in_force_is_chosen_at_every_time_whatever_was_asked_before(services):
    later = dataclasses.replace(PRICE, effective_from=T0 + HOUR, input_per_mtok=3_000_000_000)
    await services.prices.add_versions(TENANT, [later])
    book = PriceBook(services.prices)
    rates = []
    # Forwards, backwards (a back-dated record) and across the boundary, with the choice remembered.
    for at in (T0, T0 + 2 * HOUR, T0, T0 + HOUR - dt.timedelta(microseconds=1), T0 + HOUR, T0 - 31 * 24 * HOUR):
        price = await book.lookup(TENANT, "openai", "gpt-4.1", at)
        rates.append(price.input_per_mtok if price else None)
    assert rates == [2_000_000_000, 3_000_000_000, 2_000_000_000, 2_000_000_000, 3_000_000_000, None]


async def test_a_new_version_is_seen_once_the_book_is_invalidated(services):
    book = PriceBook(services.prices)
    assert (await book.lookup(TENANT, "openai", "gpt-4.1", T0)).input_per_mtok == 2_000_000_000
    cheaper = dataclasses.replace(PRICE, effective_from=T0 - HOUR, input_per_mtok=1_000_000_000)
    await services.prices.add_versions(TENANT, [cheaper])
    book.invalidate(TENANT)  # what SetPrice and the price-change notification do
    assert (await book.lookup(TENANT, "openai", "gpt-4.1", T0)).input_per_mtok == 1_000_000_000
