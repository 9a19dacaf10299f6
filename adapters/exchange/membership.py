"""Who the universe waits for: its members, as symbols list, trade and go silent.

The universe is a fixed list of slots.  A symbol is a *member* (waited for) while
it trades: one the exchange does not list (yet) or lists as not trading, and one
without a bar for ``delist_after_s``, leaves it (logged ``symbol_left``) and is
missing, never late; it joins again (``symbol_joined``) from the next
cross-section when a bar of it comes (on Binance its stream, subscribed whether
the symbol is listed or not, says so as its first bar opens), or when a reload of
the markets lists it as trading (:mod:`.listings`).  Whatever brought the news,
a symbol that joins has its bars from there asked of REST, so none is lost.

Membership changes only once the source is live (past the warm-up, which settles
who is a member at its end: :meth:`Membership.after_warm_up`).  The gate keeps the
flag itself (``CandleGate.set_member``); this part decides it, and tells the
watchdog (a member's silence counts, a non-member's does not).
"""

from __future__ import annotations

import structlog

from factorcast.adapters.exchange.feed import FeedTiming
from factorcast.adapters.exchange.intake import Intake
from factorcast.adapters.exchange.listings import Listings
from factorcast.adapters.exchange.rest import RestFeed
from factorcast.adapters.exchange.tasks import FeedTasks
from factorcast.adapters.exchange.watchdog import Watchdog

log = structlog.get_logger(__name__)


class Membership:
    """Joins and leaves of one universe's symbols."""

    def __init__(
        self,
        tf: int,
        timing: FeedTiming,
        *,
        intake: Intake,
        listings: Listings,
        rest: RestFeed,
        watchdog: Watchdog,
        tasks: FeedTasks,
    ) -> None:
        self.tf = tf
        self.intake = intake
        self.gate = intake.gate
        self.symbols = intake.symbols
        self.listings = listings
        self.rest = rest
        self.watchdog = watchdog
        self.tasks = tasks
        self.live = False  # past the warm-up: membership changes from here on
        self.left: dict[int, str] = {}  # symbols outside the universe, and why
        #: the bar before each symbol's latest joining: silence counts from there
        self._joined = [-1] * len(self.symbols)
        delist = timing.delist_after_s
        self.delist_ms = 3 * tf if delist is None else int(delist * 1000)

    def last_bar(self, i: int) -> int:
        """Bar time of symbol ``i``'s newest bar, or of the bar before its joining."""
        return max(self.intake.offered[i], self._joined[i])

    def after_warm_up(self, forming: int) -> None:
        """The warm-up brought every symbol's history up to ``forming``: symbols the
        exchange does not list or trade, and members silent too long, leave."""
        for i in range(len(self.symbols)):
            if not self.listings.trading(i):
                self.leave(i, "not_trading" if self.listings.known(i) else "not_listed")
            elif forming - self.tf - self.last_bar(i) >= self.delist_ms:
                self.leave(i, "no_bars")

    def stranger(self, i: int) -> None:
        """A live candle of symbol ``i`` came while it is outside the universe."""
        if self.live:
            self.join(i)

    def join(self, i: int, reason: str | None = None) -> int:
        """Symbol ``i`` trades: waited for from the next cross-section on.  Its bars
        from there are asked of REST (the cross-section waits for the answer), so
        none is lost whatever brought the news."""
        gate = self.gate
        since = gate.next_ts if gate.next_ts is not None else self.intake.live_from
        why = self.left.pop(i, None)
        if reason is None:
            reason = "listed" if why == "not_listed" else "trading_again"
        gate.set_member(i, True, since=since)
        self._joined[i] = max(self._joined[i], since - self.tf)
        self.watchdog.joined(i)
        log.info("symbol_joined", symbol=self.symbols[i], reason=reason, since=since)
        self.rest.catch_up_soon(i)
        return since

    def leave(self, i: int, reason: str) -> None:
        """Symbol ``i`` is no longer waited for: missing, never late, until it joins."""
        self.left[i] = reason
        self.gate.set_member(i, False)
        self.watchdog.left(i)
        last = self.last_bar(i)
        log.info(
            "symbol_left",
            symbol=self.symbols[i],
            reason=reason,
            last_bar=last if last >= 0 else None,
        )

    def expire(self, ts: int) -> bool:
        """After the cross-section at ``ts``: members without a bar for
        ``delist_after_s`` leave.  True if any did."""
        limit, member = ts - self.delist_ms, self.gate.is_member
        offered, joined = self.intake.offered, self._joined
        expired = [
            i
            for i in range(len(offered))
            if offered[i] <= limit and joined[i] <= limit and member(i)
        ]
        for i in expired:
            self.leave(i, "no_bars")
        return bool(expired)

    def markets_loaded(self) -> None:
        """Apply what the reloaded markets say: a member the exchange lists as not
        trading leaves (once REST has brought its last bars), a symbol outside the
        universe for that reason joins when it trades again.  (A member the markets
        do not list at all is left to its bars: its stream may have told of its
        listing before the markets do.)"""
        if not self.live:
            return
        listings = self.listings
        for i in range(len(self.symbols)):
            trading = listings.trading(i)
            if self.gate.is_member(i) and listings.known(i) and not trading:
                self.tasks.spawn(f"retire:{self.symbols[i]}", self._retire(i))
            elif trading and self.left.get(i) in ("not_trading", "not_listed"):
                self.join(i)
        self.intake.release()

    async def _retire(self, i: int) -> None:
        """A member the exchange stopped trading leaves, after its bars up to now."""
        await self.rest.catch_up(i)
        if self.gate.is_member(i) and not self.listings.trading(i):
            self.leave(i, "not_trading")
            self.intake.release()
