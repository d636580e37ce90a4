#!/usr/bin/env python3
"""The naive baseline: what a user might write instead of ELS.

A confluent-kafka consumer and `requests` posting to the SIEM's HEC endpoint, at least once:
the offset is committed (synchronously) only after the POST succeeded; a failed POST is
retried forever with a short sleep. It applies the same privacy rules as ELS (no org_id or
user_id; the email is already hashed on the topic) and wraps each event in a HEC envelope.

Modes:
  single  one event per request, commit after each (the simplest correct loop)
  batch   one request per poll of up to --batch events, commit after each

Bounded: stops after --max-events events or --max-seconds seconds, whichever comes first,
then prints one JSON line: events, seconds (first message to last commit), cpu_seconds
(user + system of this process from the first message on), max_rss_kib.

Usage (els-bench runs it): forwarder.py --brokers H:P --topic T --group G --url URL
"""

import argparse
import json
import os
import resource
import sys
import time
from datetime import datetime

import requests
from confluent_kafka import Consumer, KafkaError


def envelope(raw: bytes) -> dict:
    event = json.loads(raw)
    event.pop("org_id", None)
    event.pop("user_id", None)
    ts = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
    return {
        "time": round(ts, 3),
        "host": event.get("org_hostname", ""),
        "source": "els",
        "sourcetype": "els:execution",
        "event": event,
        "fields": {"event_type": event.get("event_type"), "event_id": event.get("event_id")},
    }


def post(session: requests.Session, url: str, token: str, body: str) -> None:
    while True:
        try:
            r = session.post(
                url,
                data=body,
                headers={"Authorization": f"Splunk {token}", "Content-Type": "application/json"},
                timeout=10,
            )
            if r.status_code == 200:
                return
            print(f"SIEM answered {r.status_code}: {r.text[:200]}", file=sys.stderr)
        except requests.RequestException as e:
            print(f"post failed: {e}", file=sys.stderr)
        time.sleep(0.5)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--brokers", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--token", default="els-demo-token")
    p.add_argument("--mode", choices=["single", "batch"], default="single")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--max-events", type=int, default=100_000)
    p.add_argument("--max-seconds", type=float, default=30.0)
    args = p.parse_args()

    consumer = Consumer(
        {
            "bootstrap.servers": args.brokers,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([args.topic])
    session = requests.Session()
    done = 0
    first = None
    cpu_at_first = 0.0
    last = time.monotonic()
    give_up = time.monotonic() + args.max_seconds + 30  # also bounds the group join
    try:
        while done < args.max_events:
            now = time.monotonic()
            if now > give_up or (first is not None and now - first > args.max_seconds):
                break
            if args.mode == "single":
                msgs = [consumer.poll(1.0)]
            else:
                msgs = consumer.consume(num_messages=min(args.batch, args.max_events - done), timeout=1.0)
            msgs = [m for m in msgs if m is not None]
            if not msgs:
                continue
            good = []
            for m in msgs:
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        print(f"kafka error: {m.error()}", file=sys.stderr)
                    continue
                good.append(m)
            if not good:
                continue
            if first is None:
                first = time.monotonic()
                cpu_at_first = sum(os.times()[:2])
            body = "\n".join(json.dumps(envelope(m.value())) for m in good)
            post(session, args.url, args.token, body)
            consumer.commit(asynchronous=False)
            done += len(good)
            last = time.monotonic()
    finally:
        consumer.close()
    t = os.times()
    print(
        json.dumps(
            {
                "mode": args.mode,
                "events": done,
                "seconds": (last - first) if first is not None else 0.0,
                "cpu_seconds": t.user + t.system - cpu_at_first,
                "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
