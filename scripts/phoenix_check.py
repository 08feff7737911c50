"""Reads the quickstart's spans back from Phoenix and checks how it shows them."""

import json
import sys
import time
import urllib.request

base, project = sys.argv[1], sys.argv[2]


def spans():
    url = f"{base}/v1/projects/{project}/spans?limit=1000"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)["data"]


# Phoenix ingests in the background: wait for the whole trace.
deadline = time.time() + 30
while True:
    try:
        found = spans()
    except urllib.error.HTTPError:
        found = []
    if len(found) >= 6 or time.time() > deadline:
        break
    time.sleep(0.5)

print(f"phoenix: {len(found)} spans in project {project!r}")
for s in sorted(found, key=lambda s: s["start_time"]):
    a = s["attributes"]
    tokens = (a.get("llm.token_count.prompt"), a.get("llm.token_count.completion"), a.get("llm.token_count.total"))
    print(f"  {s['span_kind']:<9} {s['status_code']:<5} {s['name']:<24} parent={s['parent_id']} tokens={tokens}")

assert len(found) == 6, f"expected the quickstart's 6 spans, got {len(found)}"
assert len({s["context"]["trace_id"] for s in found}) == 1, "one trace"
llm = [s for s in found if s["name"].startswith("llm:")]
assert len(llm) == 2, llm
for s in llm:
    a = s["attributes"]
    assert s["span_kind"] == "LLM", s["span_kind"]
    assert a["llm.model_name"] == "gpt-4o-mini", a
    assert a["llm.token_count.prompt"] > 0 and a["llm.token_count.completion"] > 0, a
    assert a["llm.token_count.total"] == a["llm.token_count.prompt"] + a["llm.token_count.completion"], a
    assert a["gen_ai.usage.input_tokens"] == a["llm.token_count.prompt"], a
    assert a["input.mime_type"] == "application/json", a
kinds = {s["name"]: s["span_kind"] for s in found}
assert kinds["answer-question"] == "CHAIN", kinds
assert kinds["plan"] == "AGENT", kinds
assert kinds["retrieve-docs"] == "RETRIEVER", kinds
assert kinds["tool:crates-io-search"] == "TOOL", kinds
root = [s for s in found if s["parent_id"] is None]
assert [s["name"] for s in root] == ["answer-question"], root

# The trace as Phoenix's own UI reads it (GraphQL): token totals on the trace.
query = {"query": "{ projects(first: 50) { edges { node { name traceCount tokenCountTotal tokenCountPrompt tokenCountCompletion } } } }"}
request = urllib.request.Request(f"{base}/graphql", data=json.dumps(query).encode(), headers={"Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=10) as response:
    answer = json.load(response)
assert answer.get("data"), answer.get("errors")
projects = [e["node"] for e in answer["data"]["projects"]["edges"]]
mine = [p for p in projects if p["name"] == project]
print(f"phoenix: project {mine}")
assert mine and mine[0]["traceCount"] == 1, projects
assert mine[0]["tokenCountTotal"] == 2 * 54 and mine[0]["tokenCountPrompt"] == 2 * 42, mine
print("phoenix: OK, the LLM spans show as LLM spans with their token counts")
