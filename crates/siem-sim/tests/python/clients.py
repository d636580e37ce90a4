"""Drive siem-sim with the official Python clients: elasticsearch (helpers.bulk,
streaming_bulk retrying 429 items) and datadog-api-client (LogsApi.submit_log).

Run by tests/python_clients.rs as `python clients.py BASE_URL TOKEN`; prints one JSON
line of results for the Rust test to check.
"""

import json
import sys
import urllib.request

from datadog_api_client import ApiClient, Configuration
from datadog_api_client.v2.api.logs_api import LogsApi
from datadog_api_client.v2.model.http_log import HTTPLog
from datadog_api_client.v2.model.http_log_item import HTTPLogItem
from elasticsearch import AuthenticationException, Elasticsearch, helpers

base, token = sys.argv[1], sys.argv[2]
out = {}


def put_faults(faults):
    req = urllib.request.Request(
        base + "/sim/faults",
        data=json.dumps(faults).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(req).read()


def creates(prefix, n):
    return [
        {"_op_type": "create", "_index": "els", "_id": f"{prefix}{i}",
         "_source": {"event_id": f"{prefix}{i}"}}
        for i in range(n)
    ]


es = Elasticsearch(base, api_key=token)
ok, errors = helpers.bulk(es, creates("py", 20), raise_on_error=False)
out["bulk_ok"] = ok
ok, errors = helpers.bulk(es, creates("py", 2), raise_on_error=False)
out["duplicate_statuses"] = [e["create"]["status"] for e in errors]
put_faults({"bulk_rejections": {"count": 2}})
results = helpers.streaming_bulk(
    es, creates("retry", 5), max_retries=3, initial_backoff=0.05, raise_on_error=False
)
out["retried_ok"] = sum(1 for ok, _ in results if ok)
try:
    Elasticsearch(base, api_key="wrong").bulk(
        operations=[{"create": {"_index": "els", "_id": "w"}}, {"a": 1}]
    )
    out["wrong_key"] = "accepted"
except AuthenticationException as e:
    out["wrong_key"] = e.status_code

for key, name in [(token, "datadog_ok"), ("wrong", "datadog_wrong_key")]:
    conf = Configuration(host=base)
    conf.api_key["apiKeyAuth"] = key
    with ApiClient(conf) as api:
        item = HTTPLogItem(
            ddsource="els", ddtags="env:test", hostname="h", service="els",
            message=json.dumps({"event_id": "dd0"}),
        )
        try:
            LogsApi(api).submit_log(body=HTTPLog([item]), content_encoding="gzip")
            out[name] = 202
        except Exception as e:  # the client's ApiException subclasses
            out[name] = getattr(e, "status", str(e))

print(json.dumps(out))
