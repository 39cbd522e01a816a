#!/usr/bin/env python3
"""`make run`'s attribution mix: payments made the ways a partner's merchants make them.

Drives the simulator (standing in for Helcim) through every path attribution evidence
can take, so the summary can show what was captured of each kind:

  gateway, tagged      through recon-gateway, which adds the partner token
  gateway, wrong token through recon-gateway with a token the client got wrong (kept as sent)
  gateway, retried     the same request twice with one idempotency key (one piece of evidence)
  direct + receipt     straight to Helcim, then reported to recon-api as receipts
  direct, no token     straight to Helcim without the partner token, reported so
  direct, no evidence  straight to Helcim, nothing reported (what attribution gaps are made of)
  terminal             a Smart Terminal purchase through the gateway, finished on the device
  HelcimPay.js         a checkout initialized through the gateway, paid in the browser
  Helcim's own tools   sales no partner request made

Usage: attribution-mix.py SIM GATEWAY API API_KEY ACCOUNTS_JSON PARTNER_TOKEN
(addresses as host:port). Standard library only. Prints one line per kind on stderr and
exits non-zero when a step does not answer as expected.
"""

import json
import sys
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone

SIM, GATEWAY, API, API_KEY, ACCOUNTS_JSON, PARTNER_TOKEN = sys.argv[1:7]
TEST_CARD = {"cardNumber": "4124939999999990", "cardExpiry": "0128", "cardCVV": "100"}


def call(method, url, body=None, headers=None):
    """(status, headers, parsed body or None). Never raises on an HTTP status."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("content-type", "application/json")
    request.add_header("accept", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            status, response_headers = response.status, response.headers
    except urllib.error.HTTPError as error:
        raw, status, response_headers = error.read(), error.code, error.headers
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return status, response_headers, parsed


def expect(what, status, wanted):
    if status not in wanted:
        sys.exit(f"[mix] {what}: answered {status}, expected {sorted(wanted)}")


def purchase(base, api_token, amount, partner_token=None, key=None, invoice=None):
    headers = {"api-token": api_token, "idempotency-key": key or str(uuid.uuid4())}
    if partner_token is not None:
        headers["partner-token"] = partner_token
    body = {
        "ipAddress": "192.0.2.10",
        "currency": "CAD",
        "amount": amount,
        "cardData": TEST_CARD,
        "invoiceNumber": invoice or f"MIX-{uuid.uuid4().hex[:10]}",
    }
    status, response_headers, parsed = call("POST", f"http://{base}/v2/payment/purchase", body, headers)
    expect(f"purchase {amount} via {base}", status, {200, 500})
    return status, response_headers.get("is-valid-partner-token"), parsed, body


def say(kind, count, note=""):
    print(f"[mix] {kind:<22} {count:>3} {note}", file=sys.stderr)


def main():
    accounts = json.load(open(ACCOUNTS_JSON))
    account = next(a for a in accounts if a.get("referredBy") is None)
    account_id, api_token = account["accountId"], account["apiToken"]

    # Through the gateway: it adds the partner token the request lacks.
    tagged = [purchase(GATEWAY, api_token, f"{10 + n}.00") for n in range(5)]
    tagged.append(purchase(GATEWAY, api_token, "12.05"))  # declined by the simulator's rule
    say("gateway, tagged", len(tagged), f"(is-valid-partner-token: {sorted({t[1] for t in tagged})})")

    wrong = [purchase(GATEWAY, api_token, f"{20 + n}.00", partner_token="not-our-token") for n in range(3)]
    say("gateway, wrong token", len(wrong), f"(is-valid-partner-token: {sorted({w[1] for w in wrong})})")

    key, invoice = str(uuid.uuid4()), f"MIX-R-{uuid.uuid4().hex[:8]}"
    first = purchase(GATEWAY, api_token, "31.00", key=key, invoice=invoice)
    again = purchase(GATEWAY, api_token, "31.00", key=key, invoice=invoice)
    if first[2] != again[2]:
        sys.exit("[mix] a retried idempotency key did not replay the first answer")
    say("gateway, retried", 2, "(one idempotency key: one piece of evidence)")

    # Straight to Helcim with the partner token, then reported as receipts.
    direct = [purchase(SIM, api_token, f"{40 + n}.00", partner_token=PARTNER_TOKEN) for n in range(3)]
    receipts = []
    for status, valid, parsed, body in direct:
        if status != 200:
            continue
        receipts.append(
            {
                "receiptId": f"mix-{uuid.uuid4()}",
                "accountId": account_id,
                "transactionId": parsed["transactionId"],
                "invoiceNumber": body["invoiceNumber"],
                "amount": body["amount"],
                "currency": body["currency"],
                "partnerTokenSent": True,
                "isValidPartnerToken": None if valid is None else int(valid),
                "observedAt": datetime.now(timezone.utc).isoformat(),
            }
        )
    status, _, parsed = call(
        "POST",
        f"http://{API}/v1/attribution/receipts",
        {"receipts": receipts},
        {"authorization": f"Bearer {API_KEY}"},
    )
    expect("receipts", status, {200})
    say("direct + receipt", len(receipts), f"(recon-api: {parsed})")

    # Straight to Helcim without the partner token, and reported so (token_missing).
    forgotten = [purchase(SIM, api_token, f"{45 + n}.00") for n in range(2)]
    status, _, parsed = call(
        "POST",
        f"http://{API}/v1/attribution/receipts",
        {"receipts": [
            {
                "receiptId": f"mix-{uuid.uuid4()}",
                "accountId": account_id,
                "transactionId": answer["transactionId"],
                "amount": body["amount"],
                "currency": body["currency"],
                "partnerTokenSent": False,
                "isValidPartnerToken": None,
                "observedAt": datetime.now(timezone.utc).isoformat(),
            }
            for _, _, answer, body in forgotten
        ]},
        {"authorization": f"Bearer {API_KEY}"},
    )
    expect("receipts without a token", status, {200})
    say("direct, no token", len(forgotten), "(receipts say no partner token was sent)")

    bare = [purchase(SIM, api_token, f"{50 + n}.00") for n in range(3)]
    say("direct, no evidence", len(bare), "(unattributed once the grace period ends)")

    # A Smart Terminal purchase through the gateway, finished on the device.
    status, _, devices = call("GET", f"http://{GATEWAY}/v2/devices", headers={"api-token": api_token})
    expect("devices", status, {200})
    device = next(d for d in devices if d["status"] == "LISTENING" and d["currency"] == "CAD")
    status, valid, _ = call(
        "POST",
        f"http://{GATEWAY}/v2/devices/{device['code']}/payment/purchase",
        {"currency": "CAD", "transactionAmount": 61.5, "invoiceNumber": f"MIX-T-{uuid.uuid4().hex[:8]}"},
        {"api-token": api_token, "idempotency-key": str(uuid.uuid4())},
    )
    expect("terminal purchase", status, {202})
    status, _, _ = call("POST", f"http://{SIM}/sim/devices/{device['code']}/complete", {"outcome": "approve"})
    expect("terminal complete", status, {200})
    say("terminal", 1)

    # A HelcimPay.js checkout initialized through the gateway, paid in the browser.
    status, _, checkout = call(
        "POST",
        f"http://{GATEWAY}/v2/helcim-pay/initialize",
        {"paymentType": "purchase", "amount": 72.25, "currency": "CAD", "invoiceNumber": f"MIX-H-{uuid.uuid4().hex[:8]}"},
        {"api-token": api_token},
    )
    expect("helcim-pay initialize", status, {200})
    status, _, _ = call("POST", f"http://{SIM}/sim/helcim-pay/{checkout['checkoutToken']}/complete", {})
    expect("helcim-pay complete", status, {200})
    say("HelcimPay.js", 1)

    for n in range(2):
        status, _, _ = call("POST", f"http://{SIM}/sim/accounts/{account_id}/sales", {"amount": f"{80 + n}.00", "currency": "CAD"})
        expect("own-tool sale", status, {200})
    say("Helcim's own tools", 2)


if __name__ == "__main__":
    main()
