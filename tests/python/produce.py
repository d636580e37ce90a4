"""Produce raw records to Kafka with confluent-kafka (librdkafka's Python client), as any
plain Kafka client of the events topic would. Reads `key<TAB>value` lines on stdin.

    produce.py BOOTSTRAP TOPIC < records.tsv

Prints the number of records Kafka acknowledged; exits 1 if any delivery failed.
"""

import sys

from confluent_kafka import Producer


def main() -> int:
    bootstrap, topic = sys.argv[1], sys.argv[2]
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True}
    )
    failed = []
    acked = 0

    def on_delivery(err, _msg):
        nonlocal acked
        if err is not None:
            failed.append(str(err))
        else:
            acked += 1

    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            continue
        key, value = line.split("\t", 1)
        producer.produce(topic, key=key.encode(), value=value.encode(), on_delivery=on_delivery)
        producer.poll(0)
    producer.flush(30)
    print(acked)
    if failed:
        print(f"{len(failed)} deliveries failed: {failed[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
