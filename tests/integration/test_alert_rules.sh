#!/usr/bin/env bash
# freshet-test: no-shared-stack (runs beside the tests that use the suite's Kafka + Redis)
# The shipped Prometheus alerting rules (deploy/prometheus/) are valid and do what they say: promtool's unit
# tests raise each alert on the series that should raise it and keep it silent on a healthy look-alike (a
# burst, a short outage, a backlog being worked off). The Grafana dashboard is valid JSON whose panels all
# query Prometheus. (That the metrics they use exist is checked against a live /metrics by test_kafka_pipeline.)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v promtool >/dev/null || fr_fail "promtool is missing: deploy/install-deps.sh installs Debian's prometheus package"
cd "$FRESHET_SOURCE_DIR/deploy/prometheus"
promtool check rules freshet-alerts.yml || fr_fail "promtool check rules failed"
promtool test rules freshet-alerts.test.yml || fr_fail "the alerting rules' unit tests failed"
python3 - "$FRESHET_SOURCE_DIR/deploy/grafana/freshet-dashboard.json" <<'PY' || fr_fail "the Grafana dashboard is not what Grafana imports"
import json, sys
d = json.load(open(sys.argv[1]))
panels = [p for p in d["panels"] if p["type"] != "row"]
assert d["uid"] and d["schemaVersion"] >= 36 and len(panels) >= 12, "too few panels or no uid"
for p in panels:
    assert p["targets"] and all(t["expr"] and t["datasource"]["type"] == "prometheus" for t in p["targets"]), p["title"]
    g = p["gridPos"]
    assert g["x"] + g["w"] <= 24, p["title"]
print(f"dashboard: {len(panels)} panels")
PY
fr_pass "alerting rules checked and unit-tested by promtool; the dashboard imports"
