#!/usr/bin/env bash
# Kafka's kafka-topics.sh: runs org.apache.kafka.tools.TopicCommand
# from the cached Kafka jars (installed on first use), all arguments passed through, e.g.
#   scripts/kafka-topics.sh --bootstrap-server 127.0.0.1:9092 --help
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="$here/../.venv/bin/python"
[[ -x "$py" ]] || py=python3
exec "$py" "$here/local_services.py" tool org.apache.kafka.tools.TopicCommand "$@"
