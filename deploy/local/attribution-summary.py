#!/usr/bin/env python3
"""`make run`'s attribution summary from the month report (`GET /v1/attribution/report`
JSON on stdin), for a reconctl without `attribution summary`: unresolved gaps by class,
money at risk by currency (and the partner's share of it where a rate is set), and the
time left to the month's close. Standard library only.
"""

import json
import sys
from datetime import datetime, timezone
from decimal import Decimal


def left(closes_at):
    close = datetime.fromisoformat(closes_at.replace("Z", "+00:00"))
    seconds = int((close - datetime.now(timezone.utc)).total_seconds())
    if seconds <= 0:
        return "closed"
    days, rest = divmod(seconds, 86400)
    return f"in {days}d {rest // 3600}h {rest % 3600 // 60}m"


def main():
    report = json.load(sys.stdin)
    gaps, at_risk, share, volume, attributed, pending = {}, {}, {}, {}, {}, {}
    for line in report["accounts"]:
        for cls, n in line.get("gaps", {}).items():
            gaps[cls] = gaps.get(cls, 0) + n
        currency = line["currency"]
        if currency == "---":  # an account with orphan evidence only: no money of its own
            continue
        for into, field in ((at_risk, "atRiskVolume"), (volume, "volume"),
                            (attributed, "attributedVolume"), (pending, "pendingVolume")):
            into[currency] = into.get(currency, Decimal(0)) + Decimal(line[field])
        if line.get("shareAtRisk") is not None:
            share[currency] = share.get(currency, Decimal(0)) + Decimal(line["shareAtRisk"])
    state = "frozen" if report["frozen"] else "live"
    print(f"attribution summary for {report['month']} ({state}; closes {report['closesAt']}, {left(report['closesAt'])})")
    classes = ("token_rejected", "token_missing", "unattributed", "orphan_evidence")
    print("  unresolved gaps by class: " + ", ".join(f"{c} {gaps.get(c, 0)}" for c in classes))
    for currency in sorted(volume):
        note = f", share at risk {share[currency]}" if currency in share else ""
        print(f"  {currency}: at risk {at_risk[currency]} of {volume[currency]} revenue"
              f" (attributed {attributed[currency]}, in grace {pending[currency]}{note})")
    if not volume:
        print("  no revenue-bearing transactions this month")


if __name__ == "__main__":
    main()
