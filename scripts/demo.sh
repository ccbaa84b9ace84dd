#!/usr/bin/env bash
# Set up, then run the main job on the sample clip that ships with the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/crowdcount analyze samples/vtest-15s.mp4 --detector human --detector face \
  --output crowdcount_results/ --csv crowdcount_results/ "$@"
